"""Scoring trained rows on real Cityscapes label maps (issue 31), exactly as a user edits.

Every eligible box of every real frame (the tight rule by default: the video frames'
pseudo-labels hold "group" pixels outside every instance) is redrawn by a model through
pipeline.apps.editing's Editor, the path `python -m stages.edit` takes, at 256x128; tIOU inside the
box against the frame's own labels. Beside each row: the two floors of pipeline.evaluation.floors
(fill-box; mean-mask with class mean masks from the training frames), paired differences with
95 % intervals, per class, and the share of "blocky" boxes (blocky_mask).

Consecutive video frames are near duplicates, so intervals resample whole sequences (and the
boxes within each chosen sequence): cluster_difference. With few held-out sequences that
interval is wide and honest; the box-level interval (pipeline.evaluation.intervals) is printed beside it
and understates the uncertainty.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.evaluation import floors
from pipeline.data.boxes import eligible_instances
from pipeline.data.sets import SIZES, STREET_DATASET, get_spec
from pipeline.data.inputs import EditBox
from pipeline.evaluation.intervals import CONFIDENCE, RESAMPLES, SEED, Estimate, paired_difference
from pipeline.evaluation.metrics import tiou
from pipeline.data.sets.cityscapes import read_pix2pixhd_frames, sequence_of

BLOCK = 4  # the pixel of a 64x32 model at 256x128: a mask constant on these blocks is "blocky"


@dataclass
class Frames:
    """Real label maps at one size: (N, H, W) labels and instance ids, frame names and the
    sequence of each frame (the resampling unit)."""
    source: str
    names: list
    labels: np.ndarray
    instances: np.ndarray

    @property
    def sequences(self) -> list:
        return [sequence_of(name) for name in self.names]


@dataclass(frozen=True)
class RealBox:
    frame: int        # index into Frames
    sequence: str
    box: tuple        # (x1, y1, x2, y2), half-open
    label: int


def video_frames(raw_dir: str, val_sequences, size=SIZES[STREET_DATASET]) -> tuple:
    """(train Frames, held-out Frames) of a Cityscapes folder with a train split only, split by
    sequence (pipeline.data.sets.cityscapes.split_by_sequence), at `size` (W, H)."""
    from pipeline.data.raw_datasets import load_raw
    if tuple(size) != tuple(SIZES[STREET_DATASET]):
        raise ValueError(f"real maps are read at {SIZES[STREET_DATASET]}, not {size}")
    splits = load_raw(STREET_DATASET, raw_dir, val_sequences=val_sequences, progress=False)
    return tuple(Frames(f"{raw_dir} ({split})", list(splits[split].names),
                        splits[split].labels.astype(np.int64),
                        splits[split].instances.astype(np.int64))
                 for split in ("train", "test"))


def gtfine_frames(folder: str, sequences, size=SIZES[STREET_DATASET]) -> Frames | None:
    """The human-labelled frames of `sequences` in a pix2pixHD-layout Cityscapes folder
    (pipeline.data.sets.cityscapes.read_pix2pixhd_frames: ../shared/data/cityscapes), at
    `size`; None when it holds none of them."""
    found = read_pix2pixhd_frames(folder, sequences, size)
    if found is None:
        return None
    names, labels, instances = found
    return Frames(f"{folder} (gtFine)", names, labels, instances)


def eligible_boxes(frames: Frames, threshold: float, rule: str) -> list:
    """Every eligible box of every frame (pipeline.data.boxes.eligible_instances), frame order."""
    spec = get_spec(STREET_DATASET)
    return [RealBox(index, sequence_of(name), inst.box, inst.label)
            for index, name in enumerate(frames.names)
            for inst in eligible_instances(frames.instances[index], spec.edit_classes,
                                           threshold, rule)]


def blocky_mask(mask: np.ndarray, box, block: int = BLOCK) -> bool:
    """Whether the object mask (H, W) bool is constant on every whole block x block tile of the
    map's grid that lies inside `box` (a mask drawn at 1/block of the map's resolution and
    resized up). A box holding no whole tile is not blocky."""
    x1, y1, x2, y2 = box
    top, left = -(-y1 // block) * block, -(-x1 // block) * block
    bottom, right = (y2 // block) * block, (x2 // block) * block
    if bottom <= top or right <= left:
        return False
    tiles = mask[top:bottom, left:right].reshape((bottom - top) // block, block,
                                                  (right - left) // block, block)
    return bool((tiles == tiles[:, :1, :, :1]).all())


def floor_maps(frames: Frames, boxes, masks: dict) -> dict:
    """floor name -> [predicted map per box] (pipeline.evaluation.floors)."""
    return {"fill-box": [floors.fill_box_prediction(frames.labels[b.frame], b.box, b.label)
                         for b in boxes],
            "mean-mask": [floors.mean_mask_prediction(frames.labels[b.frame], b.box, b.label,
                                                      masks) for b in boxes]}


def class_mean_masks(frames: Frames, threshold: float, rule: str) -> dict:
    """The mean-mask floor's class masks from `frames` (training frames, never the scored)."""
    boxes = eligible_boxes(frames, threshold, rule)
    by_name = {}
    for b in boxes:
        by_name.setdefault(frames.names[b.frame], []).append(EditBox("", b.label, b.box))
    return floors.mean_masks(frames.labels, frames.instances, frames.names, by_name)


def edited_maps(editor, frames: Frames, boxes, progress: bool = False) -> list:
    """Each box redrawn by `editor` (pipeline.apps.editing.Editor.apply: what stages.edit does) on
    its frame, with the frame's instance ids."""
    from tqdm import tqdm
    from pipeline.apps.editing import Edit
    return [editor.apply(frames.labels[b.frame], [Edit(b.box, b.label)],
                         frames.instances[b.frame]).labels
            for b in tqdm(boxes, desc=f"editing with {editor.row}", unit="box",
                          disable=not progress)]


def box_scores(frames: Frames, boxes, predicted_maps) -> np.ndarray:
    """tIOU of each predicted map inside its box, against the frame's labels."""
    return np.array([tiou(predicted, frames.labels[b.frame], b.box, b.label)
                     for b, predicted in zip(boxes, predicted_maps)])


def blocky_share(boxes, predicted_maps) -> float:
    """Share of boxes whose predicted object mask is blocky (blocky_mask)."""
    flags = [blocky_mask(predicted == b.label, b.box) for b, predicted in zip(boxes, predicted_maps)]
    return float(np.mean(flags)) if flags else 0.0


def cluster_difference(scores_a, scores_b, clusters, resamples: int = RESAMPLES,
                       seed: int = SEED) -> Estimate:
    """Mean of A − B over boxes and its 95 % percentile interval from a two-level bootstrap:
    whole clusters (sequences) drawn with replacement, then the boxes within each drawn cluster
    with replacement; B = 0 gives the interval of A alone."""
    difference = np.asarray(scores_a, float) - np.asarray(scores_b, float)
    clusters = np.asarray(clusters)
    members = [np.flatnonzero(clusters == c) for c in dict.fromkeys(clusters.tolist())]
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for r in range(resamples):
        picked = rng.integers(0, len(members), len(members))
        values = np.concatenate([difference[members[c]][rng.integers(0, len(members[c]),
                                                                     len(members[c]))]
                                 for c in picked])
        means[r] = values.mean()
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    point = float(difference.mean())
    return Estimate(point, float(min(low, point)), float(max(high, point)))


def compare(scores: dict, boxes, reference: str) -> dict:
    """row -> {by_sequence, by_box} Estimates of row − reference (paired on the same boxes;
    by_box None for a single box)."""
    clusters = [b.sequence for b in boxes]
    base = scores[reference]
    return {row: {"by_sequence": cluster_difference(values, base, clusters),
                  "by_box": paired_difference(values, base) if len(boxes) > 1 else None}
            for row, values in scores.items() if row != reference}


def per_class(scores: dict, boxes, label_names) -> list:
    """[(class name, boxes, {row: mean tIOU})] for every class with a box."""
    labels = np.array([b.label for b in boxes])
    return [(label_names[label], int((labels == label).sum()),
             {row: float(np.asarray(values)[labels == label].mean())
              for row, values in scores.items()})
            for label in sorted(set(labels.tolist()))]
