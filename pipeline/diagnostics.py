"""What a structure row draws, beyond its tIOU / hamm: where a model stays below a floor, these
say why.

- outside_decode_accuracy: outside the box the answer is in the input (Su equals the truth
  there), so the share of pixels whose decoded Ỹ label is the true one measures how precisely
  the colour decode reads the generator's colours, apart from any question of shape.
- box_label_split: inside the box, the share of pixels predicted as the target label l_t, as the
  true label where that is not l_t (the model kept or redrew the surroundings), and as any
  other label (colour noise, or a wrong class).
- largest_blob_share: the share of the box's l_t pixels in its largest 8-connected part (1.0:
  one solid object; small: scattered pixels).

Maps are integer label arrays (H, W); boxes (x1, y1, x2, y2), half-open.
"""
from __future__ import annotations

import numpy as np
import torch
from skimage.measure import label as connected_parts

from pipeline.datasets import colour_to_labels
from pipeline.inputs import edit_batch, from_unit_range
from pipeline.metrics import _crop

SPLIT_KEYS = ("target_share", "kept_true_share", "other_share")


def box_mask(shape, box) -> np.ndarray:
    """Boolean (H, W) mask of the box."""
    x1, y1, x2, y2 = (int(v) for v in box)
    inside = np.zeros(shape, dtype=bool)
    inside[y1:y2, x1:x2] = True
    return inside


def outside_decode_accuracy(predicted, truth, box) -> float:
    """Share of the pixels outside the box whose predicted label equals the true label."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    outside = ~box_mask(truth.shape, box)
    if not outside.any():
        return 1.0
    return float(np.count_nonzero(predicted[outside] == truth[outside]) / outside.sum())


def box_label_split(predicted, truth, box, label) -> dict:
    """Inside the box: shares of pixels predicted as `label` (target_share), as their true label
    where it is not `label` (kept_true_share), and as anything else (other_share); they sum to
    1."""
    predicted_box, truth_box = _crop(np.asarray(predicted), box), _crop(np.asarray(truth), box)
    target = predicted_box == label
    kept = ~target & (predicted_box == truth_box)
    size = predicted_box.size
    return {"target_share": np.count_nonzero(target) / size,
            "kept_true_share": np.count_nonzero(kept) / size,
            "other_share": np.count_nonzero(~target & ~kept) / size}


def largest_blob_share(predicted, box, label) -> float:
    """Share of the box's `label` pixels that lie in its largest 8-connected part (0.0 when
    the box has none)."""
    inside = _crop(np.asarray(predicted), box) == label
    total = np.count_nonzero(inside)
    if total == 0:
        return 0.0
    parts = connected_parts(inside, connectivity=2)
    return float(np.bincount(parts.ravel())[1:].max() / total)


@torch.no_grad()
def diagnose_edits(generator, split, spec, items, batch_size: int = 8) -> list:
    """Per test box (in `items` order) of a colour-map generator: the decode accuracy of the
    raw output Ỹ outside the box, the label split and the largest blob of the fused result
    inside it (the labels tIOU is scored on)."""
    device = next(generator.parameters()).device
    records = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        batch = edit_batch(split, spec, [i for i, _ in chunk], [edit for _, edit in chunk],
                           [False] * len(chunk), device)
        raw = generator(batch.condition)
        raw_uint8, fused_uint8 = from_unit_range(raw), from_unit_range(batch.fuse(raw))
        for (index, edit), raw_colour, fused_colour in zip(chunk, raw_uint8, fused_uint8):
            truth = split.labels[index]
            fused = colour_to_labels(fused_colour, spec.palette)
            records.append({
                "label": int(edit.label),
                "outside_decode_accuracy": outside_decode_accuracy(
                    colour_to_labels(raw_colour, spec.palette), truth, edit.box),
                **box_label_split(fused, truth, edit.box, edit.label),
                "largest_blob_share": largest_blob_share(fused, edit.box, edit.label)})
    return records
