"""HuEv, the paper's human evaluation (Table 1, appendix Fig 9): a two-alternative forced-choice
study. Each item shows the complete map, the incomplete map (the box painted with the target
label's colour: Su, what the generator saw) and the results of two rows as choices A and B; the
participant picks the one that fills the missing region better.

Three parts, all plain functions on files (the web app, pipeline.apps.webapp, is a thin layer):
- items: built from the per-box result maps the evaluate stage writes
  (artifacts/eval/results/<row>.npz), the same boxes for both rows;
- storage: SQLite in WAL mode, one committed transaction per vote (synchronous=FULL: a restart
  or a crash loses no acknowledged vote); a participant joins with an invitation code (made by
  `python -m stages.serve --invite N`, one ballot per code); the server alone knows which row
  is A or B for a participant and item, so a vote names a trial (an unguessable id of one
  participant and one item) and a letter, never a row; one vote per item per participant (a
  UNIQUE constraint, so concurrent requests cannot both get in); trials of items or rows that a
  restart removed from the study are skipped, and votes on them refused (410);
- aggregation: votes (exported as CSV, the DVC stage's input) -> preference share per row with
  a 95 % binomial (Clopper-Pearson) interval and the vote count; a vote counts for the pair of
  rows stored with it;
- blinding: the study secret (a random file beside the database, never in git) chooses the
  test boxes served (never one a committed figure shows) and the training seed of study rows
  a participant cannot rebuild (docs/huev.md, "Threat model");
- lifecycle: a closed study refuses joins and votes (403); `--export --close` closes it first."""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
import os
import random
import secrets
import sqlite3
import time
from dataclasses import dataclass

import numpy as np

from pipeline.atomic import atomic_open

RESULTS_DIR = "artifacts/eval/results"
QUESTION = ("Which synthetic image (A or B) matches the ground truth better in terms of filling "
            "the missing region?")  # the paper's task question (appendix, Fig 9)
CHOICES = ("A", "B")
VOTE_COLUMNS = ["participant", "item", "a_row", "b_row", "choice", "chosen_row", "voted_at",
                "response_ms"]


#---------------------------------------------------------------------------------------------
# Items


@dataclass(frozen=True)
class Item:
    """One study item: a test box and the maps shown for it (colour maps, (H, W, 3) uint8)."""
    key: str                 # the test image's name (items are one box per test image)
    box: tuple               # (x1, y1, x2, y2), half-open
    label: int               # target label id
    complete: np.ndarray     # the ground-truth map Yc
    incomplete: np.ndarray   # Yc with the box painted in the target label's colour (Su)
    results: dict            # row -> its result: Ŷ's labels (nearest palette colour), in colour


def incomplete_map(complete: np.ndarray, box, colour) -> np.ndarray:
    """The incomplete map of Fig 9: the box painted with the target label's colour."""
    out = complete.copy()
    x1, y1, x2, y2 = (int(v) for v in box)
    out[y1:y2, x1:x2] = np.asarray(colour, dtype=np.uint8)
    return out


def load_items(results_dir: str, rows, palette: np.ndarray, limit: int = 0) -> list:
    """The study items of two rows from the evaluate stage's per-box results
    (results_dir/<row>.npz: names, boxes, labels, truth, fused): one per test box, in test
    order, the first `limit` (0 = all). Both rows must have been scored on the same boxes.
    A result is shown as the label map the metrics score: the fused colour map Ŷ read back by
    nearest palette colour and drawn in the palette (as the editor page shows its edits)."""
    from pipeline.data.datasets import colour_to_labels

    def snap(colour):
        return palette[colour_to_labels(colour, palette)]

    if len(rows) != 2 or rows[0] == rows[1]:
        raise ValueError(f"a study compares two different rows, got {list(rows)}")
    loaded = {}
    for row in rows:
        path = os.path.join(results_dir, f"{row}.npz")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist (run the evaluate stage: "
                                    "dvc repro evaluate)")
        with np.load(path) as data:
            missing = [k for k in ("names", "boxes", "labels", "truth", "fused") if k not in data]
            if missing:
                raise ValueError(f"{path}: missing {', '.join(missing)} (rerun the evaluate "
                                 "stage)")
            loaded[row] = {k: data[k] for k in ("names", "boxes", "labels", "truth", "fused")}
    first, second = (loaded[r] for r in rows)
    for key in ("names", "boxes", "labels"):
        if first[key].shape != second[key].shape or not np.array_equal(first[key], second[key]):
            raise ValueError(f"{rows[0]} and {rows[1]} were not scored on the same test boxes "
                             f"({key} differ in {results_dir}); rerun the evaluate stage")
    if first["fused"].shape != second["fused"].shape or \
            first["fused"].shape != first["truth"].shape:
        raise ValueError(f"{results_dir}: result maps of {rows[0]} and {rows[1]} differ in size")
    count = len(first["names"]) if not limit else min(limit, len(first["names"]))
    items = []
    for i in range(count):
        label = int(first["labels"][i])
        if not 0 <= label < len(palette):
            raise ValueError(f"{results_dir}: label {label} outside the dataset's palette")
        box = tuple(int(v) for v in first["boxes"][i])
        items.append(Item(key=str(first["names"][i]), box=box, label=label,
                          complete=first["truth"][i],
                          incomplete=incomplete_map(first["truth"][i], box, palette[label]),
                          results={row: snap(loaded[row]["fused"][i]) for row in rows}))
    if not items:
        raise ValueError(f"{results_dir}: no study items (no test boxes)")
    return items


SECRET_NAME = "study.secret"  # beside the database (huev/, git-ignored)
SECRET_BYTES = 32


def secret_path(database: str) -> str:
    """The study secret's file: study.secret in the database's folder."""
    return os.path.join(os.path.dirname(os.path.abspath(database)), SECRET_NAME)


def study_secret(path: str) -> bytes:
    """The study secret at `path`, made (random, mode 0600) when there is none. ValueError
    naming the file when it is not one."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, "rb") as f:
            text = f.read(4 * SECRET_BYTES).strip()
        try:
            secret = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            secret = b""
        if len(secret) < 16:
            raise ValueError(f"{path}: not a study secret (at least 32 hex digits; delete it to "
                             "make a new one, which changes the study's items)") from None
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex() + "\n")
    return secret


def secret_number(secret: bytes, purpose: str) -> int:
    """A 63-bit number of the secret for one purpose (HMAC-SHA256): unpredictable without it."""
    digest = hmac.new(secret, purpose.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def training_seed(secret: bytes) -> int:
    """The training seed of a blinded study's rows (params seeds: [this]): a model trained with
    it cannot be rebuilt from the repository."""
    return secret_number(secret, "training seed") % 2_000_000_000


def choose_items(items: list, secret: bytes, count: int = 0, shown: int = 0) -> list:
    """The study's items: `count` (0 = all) of `items` drawn with the secret, leaving out the
    first `shown` (the test boxes the committed figures show, labelled by row), in test order.
    ValueError when none is left."""
    candidates = list(items[shown:])
    if not candidates:
        raise ValueError(f"no study items: all {len(items)} test boxes are shown in the "
                         f"committed figures (evaluate.grid_images = {shown})")
    count = len(candidates) if not count else min(count, len(candidates))
    chosen = set(random.Random(secret_number(secret, "items")).sample(range(len(candidates)),
                                                                        count))
    return [item for i, item in enumerate(candidates) if i in chosen]


def png_bytes(image: np.ndarray) -> bytes:
    """A (H, W, 3) uint8 image as PNG bytes (no metadata)."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


#---------------------------------------------------------------------------------------------
# Vote storage


class VoteError(Exception):
    """A refused vote; `status` is the HTTP status the web app answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id INTEGER PRIMARY KEY,
    token TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    participant_id INTEGER NOT NULL REFERENCES participants(id),
    position INTEGER NOT NULL,
    item TEXT NOT NULL,
    a_row TEXT NOT NULL,
    b_row TEXT NOT NULL,
    trial TEXT NOT NULL UNIQUE,
    PRIMARY KEY (participant_id, position),
    UNIQUE (participant_id, item)
);
CREATE TABLE IF NOT EXISTS invitations (
    code TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    participant_id INTEGER UNIQUE REFERENCES participants(id)
);
CREATE TABLE IF NOT EXISTS study (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY,
    participant_id INTEGER NOT NULL REFERENCES participants(id),
    item TEXT NOT NULL,
    a_row TEXT NOT NULL,
    b_row TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B')),
    chosen_row TEXT NOT NULL,
    voted_at TEXT NOT NULL,
    response_ms INTEGER,
    UNIQUE (participant_id, item)
);
"""


CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0 / o, 1 / l / i: read aloud, typed
CODE_LENGTH = 10  # 31^10 ~ 2^49 codes


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _canonical_code(code) -> str | None:
    """An invitation code as stored (lower case, without the dash and spaces); None when it
    cannot be one."""
    if not isinstance(code, str) or len(code) > 64:
        return None
    code = "".join(code.lower().replace("-", "").split())
    return code if len(code) == CODE_LENGTH and set(code) <= set(CODE_ALPHABET) else None


class VoteStore:
    """The study's SQLite database (WAL). One short connection per call, so the web server's
    worker threads never share one; every write is one transaction, durable when it returns.
    items / rows: the study as served now (item keys, its two rows); a trial of another item or
    pair of rows (a restart changed huev.items or huev.rows) is skipped by progress() and
    refused (410) by trial() and vote(). None: every trial counts (export, tests)."""

    def __init__(self, path: str, items=None, rows=None):
        self.path = path
        self.items = None if items is None else frozenset(items)
        self.rows = None if rows is None else frozenset(rows)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.path}: not a HuEv votes database ({err})") from None
        return _Closing(db)

    def closed_at(self, db=None) -> str | None:
        """When the study was closed (UTC), or None while it is open."""
        if db is None:
            with self._connect() as db:
                return self.closed_at(db)
        found = db.execute("SELECT value FROM study WHERE key = 'closed_at'").fetchone()
        return None if found is None else found[0]

    def _refuse_if_closed(self, db) -> None:
        closed = self.closed_at(db)
        if closed is not None:
            raise VoteError(403, f"the study closed at {closed}: it takes no more votes")

    def close(self) -> str:
        """Close the study (joins and votes refused from now on); returns when it closed."""
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR IGNORE INTO study (key, value) VALUES ('closed_at', ?)",
                       (_now(),))
            db.execute("COMMIT")
            return self.closed_at(db)

    def invite(self, count: int) -> list:
        """`count` new invitation codes (xxxxx-xxxxx), stored unused; one ballot each."""
        if not isinstance(count, int) or not 0 < count <= 10_000:
            raise ValueError(f"number of invitation codes must be 1..10000, got {count!r}")
        closed = self.closed_at()
        if closed is not None:
            raise ValueError(f"{self.path}: the study closed at {closed}: no new invitations")
        codes = ["".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
                 for _ in range(count)]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            for code in codes:
                db.execute("INSERT INTO invitations (code, created_at) VALUES (?, ?)",
                           (code, _now()))
            db.execute("COMMIT")
        return [f"{code[:5]}-{code[5:]}" for code in codes]

    def invitation_counts(self) -> tuple:
        """(unused, used) invitation codes."""
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) - COUNT(participant_id), COUNT(participant_id) "
                              "FROM invitations").fetchone()

    def join(self, code, items: list, rows, rng=None) -> str:
        """The participant of an invitation code; returns their token. An unused code makes a
        new anonymous participant: a random token, the items in a random order and, per item, a
        random assignment of the two rows to A and B. A used code continues its ballot (one
        ballot per code). VoteError 403 for a missing or unknown code or a closed study,
        nothing stored."""
        canonical = _canonical_code(code)
        if canonical is None:
            raise VoteError(403, "an invitation code (xxxxx-xxxxx) is needed to join: ask the "
                                 "experimenter for one" if not code else
                                 "not an invitation code (xxxxx-xxxxx)")
        rng = rng or secrets.SystemRandom()
        token = secrets.token_urlsafe(24)
        order = list(range(len(items)))
        rng.shuffle(order)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._refuse_if_closed(db)
                found = db.execute("SELECT i.participant_id, p.token FROM invitations i LEFT "
                                   "JOIN participants p ON p.id = i.participant_id WHERE "
                                   "i.code = ?", (canonical,)).fetchone()
                if found is None:
                    raise VoteError(403, "unknown invitation code")
                if found[0] is not None:
                    db.execute("COMMIT")
                    return found[1]
                cursor = db.execute("INSERT INTO participants (token, created_at) VALUES "
                                    "(?, ?)", (token, _now()))
                pid = cursor.lastrowid
                for position, index in enumerate(order):
                    a_row, b_row = rows if rng.random() < 0.5 else rows[::-1]
                    db.execute("INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?)",
                               (pid, position, items[index].key, a_row, b_row,
                                secrets.token_urlsafe(18)))
                db.execute("UPDATE invitations SET participant_id = ? WHERE code = ?",
                           (pid, canonical))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return token

    def _active(self, item, a_row, b_row) -> bool:
        """Whether a trial belongs to the study as served now."""
        return ((self.items is None or item in self.items) and
                (self.rows is None or {a_row, b_row} == self.rows))

    def _check_active(self, item, a_row, b_row) -> None:
        if not self._active(item, a_row, b_row):
            raise VoteError(410, "this item is no longer part of the study (it changed since "
                                 "the trial was made): go on with the next item")

    def participant(self, token) -> int:
        """The participant id of a token; VoteError 401 for a missing or unknown one."""
        if not isinstance(token, str) or not token:
            raise VoteError(401, "no participant token: start the study first")
        with self._connect() as db:
            found = db.execute("SELECT id FROM participants WHERE token = ?", (token,)).fetchone()
        if found is None:
            raise VoteError(401, "unknown participant token: start the study again")
        return found[0]

    def progress(self, token) -> dict:
        """{done, total, next: the next unvoted trial (trial, item, position) or None}, over
        the participant's trials that are part of the study as served now."""
        pid = self.participant(token)
        with self._connect() as db:
            trials = db.execute(
                "SELECT trial, item, position, a_row, b_row, EXISTS (SELECT 1 FROM votes v "
                "WHERE v.participant_id = t.participant_id AND v.item = t.item) FROM trials t "
                "WHERE participant_id = ? ORDER BY position", (pid,)).fetchall()
        active = [t for t in trials if self._active(t[1], t[3], t[4])]
        nxt = next((t for t in active if not t[5]), None)
        return {"done": sum(bool(t[5]) for t in active), "total": len(active),
                "next": None if nxt is None else {"trial": nxt[0], "item": nxt[1],
                                                  "position": nxt[2]}}

    def trial(self, token, trial) -> dict:
        """One of the participant's trials: {item, A: row, B: row}; VoteError 404 if the trial
        is not theirs (or does not exist), 410 if it is no longer part of the study."""
        pid = self.participant(token)
        if not isinstance(trial, str) or not trial:
            raise VoteError(422, "no trial id")
        with self._connect() as db:
            found = db.execute("SELECT item, a_row, b_row FROM trials WHERE participant_id = ? "
                               "AND trial = ?", (pid, trial)).fetchone()
        if found is None:
            raise VoteError(404, "no such trial for this participant")
        self._check_active(*found)
        return {"item": found[0], "A": found[1], "B": found[2]}

    def vote(self, token, trial, choice, response_ms=None) -> dict:
        """Store one vote (choice 'A' or 'B' on one of the participant's trials) and return the
        progress. Refused, with nothing stored: 403 the study is closed, 401 unknown
        participant, 422 malformed (choice
        not A/B, bad response time), 404 a trial that is not this participant's (forged), 409
        an item already voted on (replayed), 410 an item or pair of rows no longer in the
        study."""
        if choice not in CHOICES:
            raise VoteError(422, f"choice must be 'A' or 'B', got {choice!r}")
        if response_ms is not None and (isinstance(response_ms, bool)
                                        or not isinstance(response_ms, int)
                                        or not 0 <= response_ms <= 86_400_000):
            raise VoteError(422, f"response_ms must be an integer in [0, 86400000], got "
                                 f"{response_ms!r}")
        pid = self.participant(token)
        if not isinstance(trial, str) or not trial:
            raise VoteError(422, "no trial id")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._refuse_if_closed(db)
                found = db.execute("SELECT item, a_row, b_row FROM trials WHERE participant_id "
                                   "= ? AND trial = ?", (pid, trial)).fetchone()
                if found is None:
                    raise VoteError(404, "no such trial for this participant")
                item, a_row, b_row = found
                self._check_active(item, a_row, b_row)
                chosen = a_row if choice == "A" else b_row
                try:
                    db.execute("INSERT INTO votes (participant_id, item, a_row, b_row, choice, "
                               "chosen_row, voted_at, response_ms) VALUES (?, ?, ?, ?, ?, ?, ?, "
                               "?)", (pid, item, a_row, b_row, choice, chosen, _now(),
                                      response_ms))
                except sqlite3.IntegrityError:
                    raise VoteError(409, "this item has already been voted on") from None
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self.progress(token)

    def votes(self) -> list:
        """Every vote as a dict of VOTE_COLUMNS (participant: its sequential id, never the
        token), in the order they arrived."""
        with self._connect() as db:
            found = db.execute("SELECT participant_id, item, a_row, b_row, choice, chosen_row, "
                               "voted_at, response_ms FROM votes ORDER BY id").fetchall()
        return [dict(zip(VOTE_COLUMNS, line)) for line in found]

    def export(self, path: str, close: bool = False) -> tuple:
        """Write every vote to a CSV file (atomically); `close`: close the study first, so that
        no vote can come after the export. Returns (votes, closed_at or None: still open)."""
        closed = self.close() if close else self.closed_at()
        votes = self.votes()
        write_votes_csv(path, votes)
        return len(votes), closed


class _Closing:
    """sqlite3.Connection as a context manager that closes (sqlite3's own only commits)."""

    def __init__(self, db):
        self.db = db

    def execute(self, *args):
        return self.db.execute(*args)

    def executescript(self, script):
        return self.db.executescript(script)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.db.close()


def write_votes_csv(path: str, votes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=VOTE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for vote in votes:
            writer.writerow({k: "" if vote.get(k) is None else vote[k] for k in VOTE_COLUMNS})


def read_votes_csv(path: str) -> list:
    """The votes of an exported CSV (VOTE_COLUMNS); ValueError naming the file and line on a
    malformed one."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (python -m stages.serve --export "
                                f"{path} writes it from the study's database)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or list(reader.fieldnames) != VOTE_COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(VOTE_COLUMNS)}")
        votes = []
        for number, line in enumerate(reader, start=2):
            choice = line["choice"]
            expected = line["a_row"] if choice == "A" else line["b_row"]
            if choice not in CHOICES or line["chosen_row"] != expected or \
                    line["a_row"] == line["b_row"]:
                raise ValueError(f"{path}, line {number}: choice {choice!r} does not name "
                                 f"chosen_row {line['chosen_row']!r} (A = {line['a_row']!r}, "
                                 f"B = {line['b_row']!r})")
            votes.append(line)
    seen = set()
    for vote in votes:
        key = (vote["participant"], vote["item"])
        if key in seen:
            raise ValueError(f"{path}: participant {key[0]} voted twice on item {key[1]}")
        seen.add(key)
    return votes


#---------------------------------------------------------------------------------------------
# Aggregation


def of_pair(votes, rows) -> list:
    """The votes cast on the pair `rows` (either order): a vote counts for the rows stored with
    it, so votes cast while huev.rows named another pair stay out of this pair's numbers."""
    pair = set(rows)
    return [v for v in votes if {v["a_row"], v["b_row"]} == pair]


def other_pairs(votes, rows) -> dict:
    """Votes on pairs other than `rows`: "row1 vs row2" (sorted) -> count."""
    counts = {}
    for v in votes:
        if {v["a_row"], v["b_row"]} != set(rows):
            key = " vs ".join(sorted((v["a_row"], v["b_row"])))
            counts[key] = counts.get(key, 0) + 1
    return counts


def preference(votes, rows, confidence: float = 0.95) -> list:
    """HuEv per row of the pair: the share of votes that chose it, its Clopper-Pearson
    interval, the vote count, the number of participants and the paper's variant (each
    participant's share, averaged over participants), over the votes cast on this pair
    (of_pair; votes on other pairs are left out). With no votes every number is None.
    Votes are treated as independent trials (they are not quite: one participant answers many
    items); the participant-averaged share is given beside for that reason."""
    from scipy.stats import binomtest
    rows = list(rows)
    votes = of_pair(votes, rows)
    total = len(votes)
    participants = sorted({v["participant"] for v in votes})
    lines = []
    for row in rows:
        chosen = sum(v["chosen_row"] == row for v in votes)
        line = {"row": row, "votes_for": chosen, "votes": total,
                "participants": len(participants), "share": None, "ci_low": None,
                "ci_high": None, "share_mean_of_participants": None}
        if total:
            ci = binomtest(chosen, total).proportion_ci(confidence, method="exact")
            per_participant = []
            for p in participants:
                mine = [v for v in votes if v["participant"] == p]
                per_participant.append(sum(v["chosen_row"] == row for v in mine) / len(mine))
            line.update(share=chosen / total, ci_low=float(ci.low), ci_high=float(ci.high),
                        share_mean_of_participants=float(np.mean(per_participant)))
        lines.append(line)
    return lines


PAPER_HUEV = {"pix2pixhd-cityscapes": 0.4704, "mexgan-cityscapes": 0.5296}  # Table 1, 11 users
NO_VOTES = "no votes yet"


def summary(votes, rows) -> dict:
    """What the huev stage writes (reports/huev.json): the pair, the vote, participant and item
    counts and preference() per row, over the votes on this pair; other_pairs counts the votes
    on other pairs (cast while huev.rows named them), which are not in these numbers."""
    lines = preference(votes, rows)
    mine = of_pair(votes, rows)
    return {"rows": list(rows), "votes": len(mine),
            "participants": len({v["participant"] for v in mine}),
            "items": len({v["item"] for v in mine}), "question": QUESTION,
            "interval": "95 % Clopper-Pearson (exact binomial), votes as independent trials",
            "other_pairs": other_pairs(votes, rows),
            "preference": {line["row"]: {k: v for k, v in line.items() if k != "row"}
                           for line in lines}}


def table1_with_huev(frame, huev: dict, paper: dict = PAPER_HUEV):
    """Table 1 (pipeline.evaluation.reports.comparison_table's frame) with a `huev` line after each study
    row's last line and a `votes` column (votes for the row / all votes). Without votes the
    line has no number (ours is missing) and its votes cell says NO_VOTES."""
    import pandas as pd
    from pipeline.evaluation.floors import is_floor_row  # scipy, skimage: not at the web app's start
    records = frame.to_dict("records")
    for record in records:
        record["votes"] = None
    for row in huev["rows"]:
        values = huev["preference"][row]
        share = values["share"]
        line = {"row": row, "metric": "huev", "paper": paper.get(row),
                "ours": share,
                "ci_low": values["ci_low"], "ci_high": values["ci_high"], "seeds": None,
                "vs_floor": "", "difference": None if share is None or row not in paper
                else share - paper[row],
                "votes": NO_VOTES if share is None
                else f"{values['votes_for']} / {values['votes']}"}
        at = max((i for i, r in enumerate(records) if r["row"] == row), default=None)
        if at is None:
            at = max((i for i, r in enumerate(records) if not is_floor_row(r["row"])),
                     default=len(records) - 1)
        records.insert(at + 1, line)
    return pd.DataFrame(records, columns=list(frame.columns) + ["votes"])


def markdown(huev: dict, paper: dict = PAPER_HUEV) -> str:
    """reports/huev.md: the study's result, or a line saying it has no votes."""
    rows = huev["rows"]
    out = ["# HuEv — human evaluation (Table 1)", "",
           f"Two-alternative forced choice between `{rows[0]}` and `{rows[1]}` on the seed-679 "
           f"test boxes (A / B in random order per item and participant). Question: "
           f"\"{huev['question']}\"", ""]
    others = ", ".join(f"{n} votes on {pair}" for pair, n in huev.get("other_pairs", {}).items())
    left_out = [f"Not counted: {others} (cast while params huev.rows named that pair; set "
                "huev.rows to it for their result).", ""] if others else []
    if not huev["votes"]:
        out += [f"**{NO_VOTES}**: the study has not been run. `python -m stages.serve` serves "
                "it; `python -m stages.serve --export` writes the votes to the file this stage "
                "reads (params huev.votes).", ""]
        return "\n".join(out + left_out)
    out += [f"{huev['votes']} votes from {huev['participants']} participants on "
            f"{huev['items']} items. share: votes for the row / all votes, with a "
            f"{huev['interval']} interval; mean of participants: each participant's share, "
            "averaged (the paper's \"averaging across observers\").", "",
            "| row | paper | share | ci_low | ci_high | votes for | votes | mean of participants |",
            "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        v = huev["preference"][row]
        paper_value = f"{paper[row]:.4f}" if row in paper else "—"
        out.append(f"| {row} | {paper_value} | {v['share']:.4f} | {v['ci_low']:.4f} | "
                   f"{v['ci_high']:.4f} | {v['votes_for']} | {v['votes']} | "
                   f"{v['share_mean_of_participants']:.4f} |")
    return "\n".join(out + ([""] + left_out[:1] if left_out else [])) + "\n"
