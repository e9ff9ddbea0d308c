"""Box geometry: eligible edit boxes, the seed-679 test box, expanded boxes (Eq 6), masks.

Boxes are ``(x1, y1, x2, y2)`` in pixels, half-open: columns x1..x2-1 and rows y1..y2-1.
All functions here are pure (no torch modules, no global state).

Which boxes are eligible is a rule (params `data.box_rule`; the paper only says "boxes smaller
than the threshold of the image are excluded"):

- ``authors`` (default), as the authors' code picks its boxes: every instance id whose class
  (``id // 1000`` for ``id >= 1000``, else the id itself) is an edit class is a candidate,
  including Cityscapes' plain ids 24-33 (group regions such as a car group stored as 26:
  the box of all of the id's pixels); a dataset without instance ids (Helen) has one instance
  per class (``label * 1000``, ``per_class_instances``); size filter
  ``(h - 1)(w - 1) > threshold * H * W``, the authors' ``(row_max - row_min)(col_max - col_min)``
  on the inclusive box.
- ``tight``: only object ids (``>= 1000``) are candidates, a dataset without instance ids has
  one instance per 8-connected component (``instance_map_from_components``); size filter
  ``h * w >= threshold * H * W`` on the half-open box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

TEST_BOX_SEED = 679
BOX_RULES = ("authors", "tight")
DEFAULT_BOX_RULE = "authors"   # params data.box_rule
BOX_CONVENTIONS = ("whole", "authors")  # params profiles.<name>.box_convention (scored_box)


def scored_box(box, convention: str = "whole") -> tuple:
    """The part of a test box that tIOU and hamm score. ``whole``: the box. ``authors``: the
    box without its last row and column, as the authors' test code scores
    ``[r_min:r_max, c_min:c_max]`` of the inclusive box [r_min..r_max] x [c_min..c_max] (an
    exclusive end; our half-open box is that inclusive box). A side of one pixel keeps it (the
    authors' slice would be empty; their size filter never lets such a box through)."""
    if convention not in BOX_CONVENTIONS:
        raise ValueError(f"box convention {convention!r}: {' or '.join(BOX_CONVENTIONS)}")
    x1, y1, x2, y2 = (int(v) for v in box)
    if convention == "authors":
        x2, y2 = max(x1 + 1, x2 - 1), max(y1 + 1, y2 - 1)
    return x1, y1, x2, y2


@dataclass(frozen=True)
class Instance:
    """One object of a label map: its id, label id and tight half-open box."""
    instance_id: int
    label: int
    box: tuple          # (x1, y1, x2, y2)
    area_fraction: float  # box area / image area


def expand_box(box, j, alpha, beta, width, height):
    """Eq 6: the j-level expanded box bE_j = [x1 - j*alpha, y1 - j*beta, x2 + j*alpha, y2 + j*beta],
    clamped to the image (0 <= x1, x2 <= width; 0 <= y1, y2 <= height; half-open).

    alpha is the horizontal step, beta the vertical one (pixels); j = 0 returns the box itself.
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    if j < 0 or alpha < 0 or beta < 0:
        raise ValueError(f"expand_box needs j, alpha, beta >= 0 (got {j}, {alpha}, {beta})")
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(f"box {box} is empty or outside a {width}x{height} image")
    dx, dy = int(j * alpha), int(j * beta)
    return (max(0, x1 - dx), max(0, y1 - dy), min(width, x2 + dx), min(height, y2 + dy))


def expanded_boxes(box, q, alpha, beta, width, height):
    """The q+1 boxes bE_0..bE_q of the MEx loss (Eq 6-7)."""
    return [expand_box(box, j, alpha, beta, width, height) for j in range(q + 1)]


def box_mask(box, height, width) -> np.ndarray:
    """M of Eq 5: (H,W) float32, 1 inside the box."""
    x1, y1, x2, y2 = box
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y1:y2, x1:x2] = 1.0
    return mask


def instance_map_from_components(labels: np.ndarray, classes) -> np.ndarray:
    """Where a dataset has no instance ids: every 8-connected component of each class in
    ``classes`` becomes instance ``label*1000 + k`` (k = 1, 2, ... in scan order); other
    pixels keep their plain label id."""
    instances = labels.astype(np.int64).copy()
    structure = np.ones((3, 3), dtype=bool)
    for label in classes:
        components, count = ndimage.label(labels == label, structure=structure)
        if count:
            instances[components > 0] = label * 1000 + components[components > 0]
    return instances


def per_class_instances(labels: np.ndarray) -> np.ndarray:
    """The authors' instance map of a dataset without instance ids (their Helen maps): one
    instance per class, id ``label * 1000`` (label 0 stays 0)."""
    return labels.astype(np.int64) * 1000


def instance_label(instance_id: int) -> int:
    """Cityscapes convention: id*1000+k for objects, the plain label id otherwise."""
    return instance_id // 1000 if instance_id >= 1000 else instance_id


def list_instances(instances: np.ndarray) -> list:
    """Every instance of an (H,W) instance map, sorted by instance id, with its tight box."""
    height, width = instances.shape
    ids = np.unique(instances)
    # find_objects wants labels 1..n: map the sorted unique ids onto their rank.
    ranks = np.searchsorted(ids, instances) + 1
    slices = ndimage.find_objects(ranks)
    result = []
    for instance_id, where in zip(ids, slices):
        rows, cols = where
        box = (cols.start, rows.start, cols.stop, rows.stop)
        area = (box[2] - box[0]) * (box[3] - box[1]) / float(height * width)
        result.append(Instance(int(instance_id), instance_label(int(instance_id)), box, area))
    return result


def box_size_passes(box, height: int, width: int, threshold: float, rule: str) -> bool:
    """The size filter of an eligible box (paper appendix, "Excluding mechanism").

    authors: (h - 1)(w - 1) > threshold * H * W -- the authors' product of the inclusive box's
    index ranges; tight: h * w >= threshold * H * W. h, w are the half-open box's sides.
    """
    x1, y1, x2, y2 = box
    h, w = y2 - y1, x2 - x1
    if rule == "authors":
        return (h - 1) * (w - 1) > threshold * height * width
    if rule == "tight":
        return h * w >= threshold * height * width
    raise ValueError(f"unknown box rule {rule!r} ({' or '.join(BOX_RULES)})")


def is_candidate(instance_id: int, edit_classes, rule: str) -> bool:
    """Whether an instance id may give a box: its class is an edit class, and under the tight
    rule it is an object id (>= 1000), not a plain label id."""
    return (instance_label(instance_id) in edit_classes
            and (rule == "authors" or instance_id >= 1000))


def eligible_instances(instances: np.ndarray, edit_classes, threshold: float, rule: str) -> list:
    """Instances of an edit class whose box passes the size filter of `rule` (paper §4,
    appendix; the module docstring gives both rules)."""
    edit = set(int(c) for c in edit_classes)
    height, width = instances.shape
    return [inst for inst in list_instances(instances)
            if is_candidate(inst.instance_id, edit, rule)
            and box_size_passes(inst.box, height, width, threshold, rule)]


def select_test_box(instances: np.ndarray, edit_classes, threshold: float, rule: str,
                    seed: int = TEST_BOX_SEED):
    """The one test box of an image, or None when it has no eligible box.

    As in the authors' test script: reseed with 679 for every image, shuffle the positions of the
    image's sorted unique instance ids and take the first eligible instance. The choice is a pure
    function of the image's instance map (no file order, no hash randomisation).
    """
    all_instances = list_instances(instances)
    eligible_ids = {inst.instance_id for inst in
                    eligible_instances(instances, edit_classes, threshold, rule)}
    order = np.random.RandomState(seed).permutation(len(all_instances))
    for position in order:
        if all_instances[position].instance_id in eligible_ids:
            return all_instances[position]
    return None


def fill_box(labels: np.ndarray, box, target_label: int) -> np.ndarray:
    """Su: a copy of Sc with every pixel inside the box set to the target label (§3)."""
    x1, y1, x2, y2 = box
    incomplete = labels.copy()
    incomplete[..., y1:y2, x1:x2] = target_label
    return incomplete


def object_mask(labels: np.ndarray, instances: np.ndarray, box, label: int) -> np.ndarray:
    """The box's object as a boolean (h, w) mask: the pixels of the largest instance of `label`
    inside the box (the instance the box was drawn around); the label's pixels when none."""
    x1, y1, x2, y2 = box
    inside_labels, inside_instances = labels[y1:y2, x1:x2], instances[y1:y2, x1:x2]
    of_label = inside_labels == label
    ids, counts = np.unique(inside_instances[of_label], return_counts=True)
    if len(ids) == 0:
        return of_label
    return inside_instances == ids[np.argmax(counts)]
