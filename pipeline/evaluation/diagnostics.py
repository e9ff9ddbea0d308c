"""What a structure row draws, beyond its tIOU / hamm: where a model stays below a floor, these
say why.

- outside_decode_accuracy: outside the box the answer is in the input (Su equals the truth
  there), so the share of pixels whose decoded Ỹ label is the true one measures how precisely
  the colour decode reads the generator's colours, apart from any question of shape. For a
  TwoSM row, the share of its context stream's argmax that is true outside the box (inside
  its observation window): it predicts labels, with no colour decode.
- box_label_split: inside the box, the share of pixels predicted as the target label l_t, as the
  true label where that is not l_t (the model kept or redrew the surroundings), and as any
  other label (colour noise, or a wrong class).
- largest_blob_share: the share of the box's l_t pixels in its largest 8-connected part (1.0:
  one solid object; small: scattered pixels).

Maps are integer label arrays (H, W); boxes (x1, y1, x2, y2), half-open.
"""
from __future__ import annotations

import numpy as np
from skimage.measure import label as connected_parts

from pipeline.data.boxes import box_mask
from pipeline.evaluation.metrics import _crop, tiou

SPLIT_KEYS = ("target_share", "kept_true_share", "other_share")


def region_accuracy(predicted, truth, region) -> float:
    """Share of the pixels in the boolean `region` whose predicted label equals the true label
    (1.0 for an empty region)."""
    predicted, truth, region = np.asarray(predicted), np.asarray(truth), np.asarray(region)
    if not region.any():
        return 1.0
    return float(np.count_nonzero(predicted[region] == truth[region]) / region.sum())


def outside_decode_accuracy(predicted, truth, box) -> float:
    """Share of the pixels outside the box whose predicted label equals the true label."""
    return region_accuracy(predicted, truth, ~box_mask(box, *np.shape(truth)).astype(bool))


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


def diagnose_edits(draw, generator, split, spec, items, batch_size: int = 8) -> list:
    """Per test box (in `items` order), from the evaluation's own edit pass (`draw`, the row
    kind's edited_maps, pipeline.evaluation.evaluation): the accuracy of the model's labels
    where the input shows the answer (a colour row: Ỹ decoded outside the box; TwoSM: its
    context stream outside the box, inside its window), the label split and the largest blob
    of the labels tIOU scores inside the box; a TwoSM row also the tIOU of its context argmax
    alone (context_tiou)."""
    records = []
    for edited in draw(generator, split, spec, items, batch_size, observe=True):
        truth, box, label = split.labels[edited.index], edited.edit.box, edited.edit.label
        record = {"label": int(label),
                  "outside_decode_accuracy": region_accuracy(edited.observed, truth,
                                                             edited.observed_region),
                  **box_label_split(edited.labels, truth, box, label),
                  "largest_blob_share": largest_blob_share(edited.labels, box, label)}
        if edited.context is not None:
            record["context_tiou"] = tiou(edited.context, truth, box, label)
        records.append(record)
    return records
