"""HuEv's votes (pipeline.apps.huev is the study): SQLite in WAL mode, one committed transaction
per vote (synchronous=FULL: a restart or a crash loses no acknowledged vote), and the CSV they
are exported to (the huev stage's input).
- joining: a participant joins with an invitation code (made by `python -m stages.serve
  --invite N`, one ballot per code);
- trials: the server alone knows which row is A or B for a participant and item, so a vote
  names a trial (an unguessable id of one participant and one item) and a letter, never a row;
  one vote per item per participant (a UNIQUE constraint, so concurrent requests cannot both
  get in); trials of items or rows that a restart removed from the study are skipped, and votes
  on them refused (410); a vote counts for the pair of rows stored with it;
- lifecycle: a closed study refuses joins and votes (403); `--export --close` closes it first."""
from __future__ import annotations

import csv
import os
import secrets
import sqlite3
import time

from pipeline.atomic import atomic_open

CHOICES = ("A", "B")
VOTE_COLUMNS = ["participant", "item", "a_row", "b_row", "choice", "chosen_row", "voted_at",
                "response_ms"]


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
