"""Floor rows: what a model that learned nothing (or nothing much) scores on the same test boxes.

A trained row is only interesting above these floors. Neither needs training:

- `fill-box`: the prediction is Su itself, the whole box painted with the target label l_t.
  On a box that is the bounding box of an l_t object, tIOU = hamm = the share of the box that
  the object covers (≈ 0.78 on Cityscapes-like boxes, above the paper's own rows).
- `mean-mask`: a class prior. The mean object mask of every training box of class l_t, taken
  on a fixed grid, is resized into the test box and thresholded at 0.5: l_t inside the mask,
  and the most frequent label on the one-pixel ring just outside the box everywhere else in it.

Inpainting (Table 3) has its own floors, on the same seed-679 holes as the GL rows:

- `mean-fill`: the hole filled with the training set's mean colour (GL's input itself).
- `biharmonic`: skimage.restoration.inpaint_biharmonic, a smooth interpolation of the border.

Maps are integer label arrays (H, W); photos (H, W, 3) uint8; boxes and holes are
(x1, y1, x2, y2), half-open.
"""
from __future__ import annotations

import numpy as np
from skimage.transform import resize

from pipeline.data.boxes import fill_box, object_mask

FLOORS = ("fill-box", "mean-mask")
INPAINTING_FLOORS = ("mean-fill", "biharmonic")
MASK_GRID = 32  # side of the grid the training masks are averaged on


def floor_row_name(floor: str, dataset: str) -> str:
    """The row name of a floor (of FLOORS or INPAINTING_FLOORS) on `dataset`."""
    return f"floor-{floor}-{dataset}"


def is_floor_row(row: str, dataset: str | None = None) -> bool:
    """Whether `row` names a floor row (floor_row_name of a floor in FLOORS or
    INPAINTING_FLOORS), on `dataset` when one is given; every other row is a trained one."""
    if dataset is not None:
        return any(row == floor_row_name(floor, dataset)
                   for floor in FLOORS + INPAINTING_FLOORS)
    prefixes = [floor_row_name(floor, "") for floor in FLOORS + INPAINTING_FLOORS]
    return any(row.startswith(prefix) and len(row) > len(prefix) for prefix in prefixes)


def mean_masks(labels: np.ndarray, instances: np.ndarray, names, boxes: dict) -> dict:
    """label -> (MASK_GRID, MASK_GRID) mean object mask over every training box of that label.
    labels / instances: (N, H, W) of the training split; boxes: image name -> [EditBox]."""
    sums, counts = {}, {}
    for index, name in enumerate(names):
        for edit in boxes.get(name, ()):
            mask = object_mask(labels[index], instances[index], edit.box, edit.label)
            grid = resize(mask.astype(np.float64), (MASK_GRID, MASK_GRID), order=1,
                          mode="edge", anti_aliasing=False)
            sums[edit.label] = sums.get(edit.label, 0.0) + grid
            counts[edit.label] = counts.get(edit.label, 0) + 1
    return {label: sums[label] / counts[label] for label in sorted(sums)}


def ring_label(incomplete: np.ndarray, box) -> int:
    """The most frequent label on the one-pixel ring just outside the box (clamped to the map;
    ties go to the smallest label). A box covering the whole map has no ring: its own label."""
    height, width = incomplete.shape
    x1, y1, x2, y2 = box
    outer = incomplete[max(y1 - 1, 0):min(y2 + 1, height), max(x1 - 1, 0):min(x2 + 1, width)]
    ring = np.ones(outer.shape, dtype=bool)
    ring[y1 - max(y1 - 1, 0):y1 - max(y1 - 1, 0) + (y2 - y1),
         x1 - max(x1 - 1, 0):x1 - max(x1 - 1, 0) + (x2 - x1)] = False
    values = outer[ring]
    if values.size == 0:
        return int(incomplete[y1, x1])
    found, counts = np.unique(values, return_counts=True)
    return int(found[np.argmax(counts)])


def fill_box_prediction(labels: np.ndarray, box, label: int) -> np.ndarray:
    """`fill-box`: Su, the map with the whole box painted with l_t."""
    return fill_box(labels, box, label)


def mean_mask_prediction(labels: np.ndarray, box, label: int, masks: dict) -> np.ndarray:
    """`mean-mask`: l_t where the class's mean mask, resized into the box, is >= 0.5; the ring
    label elsewhere in the box; the map unchanged outside. A class without training boxes gets
    the whole box (the fill-box prediction)."""
    x1, y1, x2, y2 = box
    predicted = fill_box(labels, box, label)
    if label not in masks:
        return predicted
    inside = resize(masks[label], (y2 - y1, x2 - x1), order=1, mode="edge",
                    anti_aliasing=False) >= 0.5
    predicted[y1:y2, x1:x2][~inside] = ring_label(predicted, box)
    return predicted


#---------------------------------------------------------------------------------------------
# Inpainting floors


def mean_fill(photo: np.ndarray, hole, colour) -> np.ndarray:
    """`mean-fill`: the photo with the hole set to `colour` (R, G, B on 0-255, rounded)."""
    x1, y1, x2, y2 = hole
    filled = np.array(photo, dtype=np.uint8, copy=True)
    filled[y1:y2, x1:x2] = np.clip(np.round(np.asarray(colour, dtype=np.float64)), 0, 255)
    return filled


def biharmonic_fill(photo: np.ndarray, hole) -> np.ndarray:
    """`biharmonic`: the hole filled by skimage's biharmonic inpainting of each channel from the
    pixels around it; outside the hole the photo, unchanged."""
    from skimage.restoration import inpaint_biharmonic
    x1, y1, x2, y2 = hole
    mask = np.zeros(photo.shape[:2], dtype=bool)
    mask[y1:y2, x1:x2] = True
    if mask.all():
        raise ValueError(f"hole {tuple(hole)} covers the whole image: nothing to inpaint from")
    filled = inpaint_biharmonic(photo.astype(np.float64) / 255.0, mask, channel_axis=-1)
    result = np.array(photo, dtype=np.uint8, copy=True)
    result[mask] = np.clip(np.round(filled[mask] * 255.0), 0, 255).astype(np.uint8)
    return result
