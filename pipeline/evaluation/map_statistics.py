"""How a world of street label maps looks, measured the same way on real and synthetic maps.

Cityscapes label ids and instance maps (``class*1000 + k`` for objects, plain ids elsewhere).
Every measure uses the project's own rules so that its numbers mean what they mean elsewhere:

- boxes: ``pipeline.data.boxes.eligible_instances`` (box rule and size threshold as in `prepare`);
- floors: ``pipeline.evaluation.floors`` (fill-box, mean-mask) scored with ``pipeline.evaluation.metrics.tiou`` over
  every eligible box; the mean masks of a map come from the maps of the *other* groups
  (leave one group out: one video sequence, or the train split for the test split).

Per box (``box_table``): the class, the box, its object's pixels (``fill`` = object pixels /
box area), the box's pixels of its label (``label_fill``, what the fill-box floor scores), the
pixels of another object (any pixel of an instance class 24..33 that is not the box's own
object: occlusion, overlap, a row of parked cars, a crowd region), the pixels of another object
of the same class, and whether the box touches the image border (truncation).

Maps are integer arrays (N, H, W); functions are pure.
"""
from __future__ import annotations

import os
import re
from glob import glob
from typing import NamedTuple

import numpy as np
from PIL import Image

from pipeline.data.boxes import box_size_passes, instance_label, is_candidate, list_instances

class _Box(NamedTuple):
    """What pipeline.evaluation.floors.mean_masks reads of an EditBox (pipeline.data.inputs needs torch)."""
    image: str
    label: int
    box: tuple


THING_CLASSES = tuple(range(24, 34))       # Cityscapes classes with instances
STUFF_CLASSES = {"road": 7, "sidewalk": 8, "building": 11, "vegetation": 21, "sky": 23,
                 "pole": 17}
CLASS_NAMES = {24: "person", 25: "rider", 26: "car", 27: "truck", 28: "bus", 29: "caravan",
               30: "trailer", 31: "train", 32: "motorcycle", 33: "bicycle"}
POSITION_BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 1.0001)   # box bottom (y2 / H) bins
LAYOUT_BANDS = 8                                     # stuff layout: horizontal bands of rows
TABLE_COLUMNS = ("map", "instance", "label", "x1", "y1", "x2", "y2", "object_pixels",
                 "label_pixels", "other_pixels", "same_class_other_pixels", "thing_other_pixels",
                 "truncated")


#---------------------------------------------------------------------------------------------
# Reading real maps (PIL directly; nearest resize as `prepare` does)


def read_maps(label_paths, instance_paths, width: int, height: int):
    """(labels, instances): (N, height, width) int64, each file resized nearest with PIL (as
    pipeline.data.preparation.resize_split does)."""
    def nearest(path):
        array = np.asarray(Image.open(path)).astype(np.int32)
        if array.shape != (height, width):
            array = np.asarray(Image.fromarray(array).resize((width, height), Image.NEAREST))
        return array.astype(np.int64)
    labels = np.stack([nearest(p) for p in label_paths])
    instances = np.stack([nearest(p) for p in instance_paths])
    return labels, instances


def find_frames(root: str):
    """(names, label_paths, instance_paths, groups) of every *_gtFine_labelIds.png under root
    with its *_gtFine_instanceIds.png (same folder, or a train_label / train_inst pair of
    folders as in ../shared/data/cityscapes); group = city_sequence (aachen_000003)."""
    label_paths = sorted(glob(os.path.join(root, "**", "*_gtFine_labelIds.png"), recursive=True))
    if not label_paths:
        raise FileNotFoundError(f"no *_gtFine_labelIds.png under {root}")
    names, instance_paths, groups = [], [], []
    for path in label_paths:
        name = os.path.basename(path)[:-len("_gtFine_labelIds.png")]
        candidates = [path.replace("_gtFine_labelIds.png", "_gtFine_instanceIds.png"),
                      os.path.join(os.path.dirname(os.path.dirname(path)), "train_inst",
                                   f"{name}_gtFine_instanceIds.png")]
        instance = next((c for c in candidates if c != path and os.path.exists(c)), None)
        if instance is None:
            raise FileNotFoundError(f"no instance map for {path}")
        names.append(name)
        instance_paths.append(instance)
        match = re.match(r"(.+?_\d+)_\d+$", name)
        groups.append(match.group(1) if match else name)
    return names, label_paths, instance_paths, groups


#---------------------------------------------------------------------------------------------
# Per-box table


def _summed_area(mask: np.ndarray) -> np.ndarray:
    """(H+1, W+1) integral image of a boolean map."""
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = mask.astype(np.int64).cumsum(0).cumsum(1)
    return table


def _box_sums(table: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Sum of the map inside each half-open box (rows of x1, y1, x2, y2)."""
    x1, y1, x2, y2 = boxes.T
    return table[y2, x2] - table[y1, x2] - table[y2, x1] + table[y1, x1]


def map_box_table(labels: np.ndarray, instances: np.ndarray, edit_classes, threshold: float,
                  rule: str) -> np.ndarray:
    """One map's eligible boxes (rule and threshold of pipeline.data.boxes) as an int64 array with
    the columns TABLE_COLUMNS (map = 0). threshold 0 keeps every candidate object."""
    height, width = instances.shape
    edit = set(int(c) for c in edit_classes)
    chosen = [inst for inst in list_instances(instances)
              if is_candidate(inst.instance_id, edit, rule)
              and box_size_passes(inst.box, height, width, threshold, rule)]
    if not chosen:
        return np.zeros((0, len(TABLE_COLUMNS)), dtype=np.int64)
    ids = np.array([inst.instance_id for inst in chosen], dtype=np.int64)
    classes = np.array([inst.label for inst in chosen], dtype=np.int64)
    boxes = np.array([inst.box for inst in chosen], dtype=np.int64)
    found, counts = np.unique(instances, return_counts=True)
    object_pixels = counts[np.searchsorted(found, ids)]
    thing_in_box = _box_sums(_summed_area(np.isin(labels, THING_CLASSES)), boxes)
    objects_in_box = _box_sums(_summed_area(instances >= 1000), boxes)
    label_pixels = np.zeros(len(chosen), dtype=np.int64)
    same_class = np.zeros(len(chosen), dtype=np.int64)
    for label in np.unique(classes):
        rows = classes == label
        label_pixels[rows] = _box_sums(_summed_area(labels == label), boxes[rows])
        same_class[rows] = _box_sums(_summed_area(instances // 1000 == label), boxes[rows])
    # every pixel of an instance lies in its tight box; under the tight rule it is an object id
    # of a thing class, so it counts once in objects_in_box, thing_in_box and same_class
    own = np.where(ids >= 1000, object_pixels, 0)
    other = objects_in_box - own                 # pixels of another object id
    same_class = same_class - own                # ... of the same class
    thing_other = thing_in_box - np.where(np.isin(classes, THING_CLASSES), object_pixels, 0)
    truncated = ((boxes[:, 0] == 0) | (boxes[:, 1] == 0) | (boxes[:, 2] == width)
                 | (boxes[:, 3] == height)).astype(np.int64)
    return np.column_stack([np.zeros(len(chosen), dtype=np.int64), ids, classes, boxes,
                            object_pixels, label_pixels, np.maximum(other, 0),
                            np.maximum(same_class, 0), np.maximum(thing_other, 0), truncated])


def box_table(labels: np.ndarray, instances: np.ndarray, edit_classes, threshold: float,
              rule: str) -> np.ndarray:
    """map_box_table over a stack of maps, the map column filled with the map's index."""
    tables = []
    for index in range(len(labels)):
        table = map_box_table(labels[index], instances[index], edit_classes, threshold, rule)
        table[:, 0] = index
        tables.append(table)
    return np.concatenate(tables) if tables else np.zeros((0, len(TABLE_COLUMNS)), np.int64)


def column(table: np.ndarray, name: str) -> np.ndarray:
    return table[:, TABLE_COLUMNS.index(name)]


#---------------------------------------------------------------------------------------------
# Summaries


def box_measures(table: np.ndarray) -> dict:
    """Per-box derived measures (arrays): area (box pixels), fill, label_fill, holds_other
    (pixels of another object id), holds_same_class (... of the same class), holds_thing (any
    pixel of a thing class that is not the box's object: also crowd / unassigned pixels of
    those classes, as pseudo-labels leave around objects), truncated, width, height, aspect (w / h), bottom (y2, rows)."""
    x1, y1, x2, y2 = (column(table, c) for c in ("x1", "y1", "x2", "y2"))
    w, h = x2 - x1, y2 - y1
    area = np.maximum(w * h, 1)
    return {"area": area, "width": w, "height": h, "aspect": w / np.maximum(h, 1),
            "bottom": y2, "fill": column(table, "object_pixels") / area,
            "label_fill": column(table, "label_pixels") / area,
            "holds_other": column(table, "other_pixels") > 0,
            "holds_same_class": column(table, "same_class_other_pixels") > 0,
            "holds_thing": column(table, "thing_other_pixels") > 0,
            "truncated": column(table, "truncated") > 0}


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None


def class_summary(table: np.ndarray, maps: int, height: int, width: int, classes=None) -> dict:
    """Per class name (and "all"): boxes per map, mean fill / label fill, the share of boxes
    holding another object (and another object of the same class), the share truncated by the
    border, and box size (height and width as fractions of the image) and aspect by the box
    bottom's position (POSITION_BINS of y2 / H)."""
    measures = box_measures(table)
    labels = column(table, "label")
    present = sorted(set(labels.tolist()) if classes is None else classes)
    result = {}
    for label in present + ["all"]:
        rows = np.ones(len(table), dtype=bool) if label == "all" else labels == label
        name = "all" if label == "all" else CLASS_NAMES.get(label, str(label))
        by_position = []
        position = measures["bottom"] / height
        for low, high in zip(POSITION_BINS[:-1], POSITION_BINS[1:]):
            inside = rows & (position > low) & (position <= high)
            by_position.append({
                "bottom_from": low, "bottom_to": min(high, 1.0), "boxes": int(inside.sum()),
                "height": _mean(measures["height"][inside] / height),
                "width": _mean(measures["width"][inside] / width),
                "aspect": _mean(measures["aspect"][inside])})
        result[name] = {
            "boxes": int(rows.sum()), "boxes_per_map": rows.sum() / max(maps, 1),
            "fill": _mean(measures["fill"][rows]),
            "label_fill": _mean(measures["label_fill"][rows]),
            "holds_other": _mean(measures["holds_other"][rows]),
            "holds_same_class": _mean(measures["holds_same_class"][rows]),
            "holds_thing": _mean(measures["holds_thing"][rows]),
            "truncated": _mean(measures["truncated"][rows]),
            "height": _mean(measures["height"][rows] / height),
            "width": _mean(measures["width"][rows] / width),
            "aspect": _mean(measures["aspect"][rows]),
            "by_position": by_position}
    return result


def stuff_layout(labels: np.ndarray, classes: dict = STUFF_CLASSES,
                 bands: int = LAYOUT_BANDS) -> dict:
    """Per stuff class name: its share of the pixels of each horizontal band of rows (band 0
    at the top), over every map, and its share of all pixels."""
    n, height, width = labels.shape
    edges = np.linspace(0, height, bands + 1).round().astype(int)
    result = {}
    for name, label in classes.items():
        rows = (labels == label).mean(axis=(0, 2))            # share per row
        result[name] = {"share": float(rows.mean()),
                        "bands": [float(rows[a:b].mean()) for a, b in zip(edges[:-1], edges[1:])]}
    return result


def object_counts(instances: np.ndarray, classes=THING_CLASSES) -> dict:
    """Objects (ids >= 1000) per map of each class, any size."""
    ids = [np.unique(m) for m in instances]
    result = {}
    for label in classes:
        count = sum(int(((i >= 1000) & (i // 1000 == label)).sum()) for i in ids)
        result[CLASS_NAMES[label]] = count / max(len(instances), 1)
    return result


#---------------------------------------------------------------------------------------------
# Floors over every eligible box


def floor_scores(labels: np.ndarray, instances: np.ndarray, table: np.ndarray, groups,
                 scored_groups=None) -> dict:
    """fill-box and mean-mask tIOU (pipeline.evaluation.floors, pipeline.evaluation.metrics) of every box of `table`
    whose map's group is in `scored_groups` (default: every group); the mean masks of a map
    come from the boxes of every map of another group. Returns {"fill-box": array,
    "mean-mask": array, "rows": indices into table}."""
    from pipeline.evaluation.floors import fill_box_prediction, mean_mask_prediction, mean_masks
    from pipeline.evaluation.metrics import tiou
    groups = np.asarray(groups)
    names = [str(i) for i in range(len(labels))]
    boxes = {}
    for row in table:
        index = int(row[0])
        boxes.setdefault(names[index], []).append(
            _Box(names[index], int(row[2]), tuple(int(v) for v in row[3:7])))
    scored = sorted(set(groups.tolist())) if scored_groups is None else list(scored_groups)
    fill, mean, rows = [], [], []
    maps_of_row = column(table, "map")
    for group in scored:
        train = {names[i]: boxes.get(names[i], []) for i in np.flatnonzero(groups != group)}
        masks = mean_masks(labels, instances, names, train)
        for r in np.flatnonzero(groups[maps_of_row] == group):
            index, label = int(table[r, 0]), int(table[r, 2])
            box = tuple(int(v) for v in table[r, 3:7])
            fill.append(tiou(fill_box_prediction(labels[index], box, label), labels[index],
                             box, label))
            mean.append(tiou(mean_mask_prediction(labels[index], box, label, masks),
                             labels[index], box, label))
            rows.append(r)
    return {"fill-box": np.array(fill), "mean-mask": np.array(mean), "rows": np.array(rows)}


#---------------------------------------------------------------------------------------------
# One world's report


def world_statistics(labels, instances, groups, edit_classes, threshold: float, rule: str,
                     scored_groups=None, classes=None) -> dict:
    """Everything above for one world: "maps", "size", "classes" (class_summary), "objects"
    (object_counts, any size), "stuff" (stuff_layout), "floors" (mean fill-box / mean-mask
    tIOU over the scored boxes, overall and per class, with the box count)."""
    n, height, width = labels.shape
    table = box_table(labels, instances, edit_classes, threshold, rule)
    scores = floor_scores(labels, instances, table, groups, scored_groups)
    scored_labels = column(table, "label")[scores["rows"]] if len(scores["rows"]) else []
    floors = {"boxes": int(len(scores["rows"])),
              "fill-box": _mean(scores["fill-box"]), "mean-mask": _mean(scores["mean-mask"]),
              "per_class": {}}
    for label in sorted(set(np.asarray(scored_labels).tolist())):
        rows = np.asarray(scored_labels) == label
        floors["per_class"][CLASS_NAMES.get(label, str(label))] = {
            "boxes": int(rows.sum()), "fill-box": _mean(scores["fill-box"][rows]),
            "mean-mask": _mean(scores["mean-mask"][rows])}
    return {"maps": int(n), "size": f"{width}x{height}", "box_rule": rule,
            "size_threshold": threshold,
            "classes": class_summary(table, n, height, width, classes),
            "objects_per_map": object_counts(instances),
            "stuff": stuff_layout(labels), "floors": floors}


def instance_label_of(ids: np.ndarray) -> np.ndarray:
    """Vectorised pipeline.data.boxes.instance_label."""
    ids = np.asarray(ids)
    return np.where(ids >= 1000, ids // 1000, ids)


__all__ = ["box_table", "map_box_table", "class_summary", "stuff_layout", "object_counts",
           "floor_scores", "world_statistics", "read_maps", "find_frames", "box_measures",
           "instance_label", "instance_label_of"]
