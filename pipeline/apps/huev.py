"""HuEv, the paper's human evaluation (Table 1, appendix Fig 9): a two-alternative forced-choice
study. Each item shows the complete map, the incomplete map (the box painted with the target
label's colour: Su, what the generator saw) and the results of two rows as choices A and B; the
participant picks the one that fills the missing region better.

Four parts, all plain functions on files (the web app, pipeline.apps.webapp, is a thin layer):
- items (here): built from the per-box result maps the evaluate stage writes
  (artifacts/eval/results/<row>.npz), the same boxes for both rows;
- blinding (here): the study secret (a random file beside the database, never in git) chooses
  the test boxes served (never one a committed figure shows) and the training seed of study
  rows a participant cannot rebuild (docs/huev.md, "Threat model");
- storage and lifecycle: pipeline.apps.huev_votes (the votes database, invitation codes,
  trials, the exported CSV);
- aggregation: pipeline.apps.huev_results (preference share per row, Table 1's HuEv line,
  reports/huev.md)."""
from __future__ import annotations

import hashlib
import hmac
import os
import random
import secrets
from dataclasses import dataclass

import numpy as np

QUESTION = ("Which synthetic image (A or B) matches the ground truth better in terms of filling "
            "the missing region?")  # the paper's task question (appendix, Fig 9)


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


#---------------------------------------------------------------------------------------------
# Blinding


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
