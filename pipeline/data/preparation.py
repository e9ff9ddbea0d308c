"""The prepare stage's library side: get a dataset's splits (synthetic generator or the real
archives), bring them to the configured size, list every eligible box, pick the seed-679 test
boxes and write the prepared directory (see pipeline.data.datasets for its layout)."""
from __future__ import annotations

import json
import os
import shutil
from collections import Counter

import numpy as np
from PIL import Image

from pipeline.data.boxes import (DEFAULT_BOX_RULE, eligible_instances, per_class_instances,
                            select_test_box)
from pipeline.data.datasets import DatasetSpec, SplitArrays, write_split
from pipeline.data.inputs import BOX_COLUMNS, TEST_BOX_COLUMNS, write_csv
from pipeline.data.sets import get_dataset
from pipeline.atomic import replace_dir

SPLITS = ("train", "test")


def resize_split(split: SplitArrays, width: int, height: int) -> SplitArrays:
    """Labels and instances nearest, photos bilinear; a no-op at the stored size."""
    if split.labels.shape[1:] == (height, width):
        return split

    def nearest(array):
        return np.stack([np.asarray(Image.fromarray(a.astype(np.int32)).resize(
            (width, height), Image.NEAREST)) for a in array])

    photos = np.stack([np.asarray(Image.fromarray(p).resize((width, height), Image.BILINEAR))
                       for p in split.photos])
    return SplitArrays(split.names, nearest(split.labels), nearest(split.instances), photos)


def check_labels(split: SplitArrays, spec: DatasetSpec, where: str) -> None:
    top = int(split.labels.max(initial=0))
    if top >= spec.num_labels:
        index = int(np.argmax(split.labels.reshape(len(split.names), -1).max(1)))
        raise ValueError(f"{where}: image {split.names[index]} has label {top}, outside the "
                         f"{spec.name} palette (0..{spec.num_labels - 1})")


def instances_for_rule(split: SplitArrays, spec: DatasetSpec, rule: str) -> SplitArrays:
    """The instance maps boxes are drawn from under `rule` (pipeline.data.boxes): a dataset without
    instance ids (Helen) is read with one instance per 8-connected component; the authors' rule
    regroups it to one instance per class (their `label*1000`). Edges between instances are
    the same either way (components of one class never touch), so only the boxes change."""
    if rule != "authors" or spec.instances_from != "components" or not spec.edit_classes:
        return split
    return SplitArrays(split.names, split.labels, per_class_instances(split.labels),
                       split.photos)


def box_rows(split_name: str, split: SplitArrays, spec: DatasetSpec, threshold: float,
             rule: str = DEFAULT_BOX_RULE):
    """boxes.csv rows: every eligible box (one per instance), sorted by image."""
    rows = []
    for name, instances in zip(split.names, split.instances):
        for inst in eligible_instances(instances, spec.edit_classes, threshold, rule):
            rows.append([split_name, name, inst.label, *inst.box, f"{inst.area_fraction:.6f}"])
    return rows


def test_box_rows(split: SplitArrays, spec: DatasetSpec, threshold: float, rule: str,
                  seed: int):
    rows, skipped = [], []
    for name, instances in zip(split.names, split.instances):
        inst = select_test_box(instances, spec.edit_classes, threshold, rule, seed)
        if inst is None:
            skipped.append(name)
        else:
            rows.append([name, inst.label, *inst.box, f"{inst.area_fraction:.6f}"])
    return rows, skipped


def prepare_dataset(spec_name: str, splits: dict, out_dir: str, *, width: int, height: int,
                    threshold: float, box_rule: str, seed: int = 679, source: str,
                    list_threshold: float | None = None, hole=(0.375, 0.5),
                    hole_repeats: int = 20) -> dict:
    """Write the prepared directory for `splits` ({"train": SplitArrays, "test": ...}).
    Eligible boxes and the test boxes use `threshold` and `box_rule` (pipeline.data.boxes: authors |
    tight; under authors Helen's instances are one per class); boxes.csv lists every box down to
    `list_threshold` (default: threshold), for rows trained with a lower one (TwoSM: 0.01).
    Everything goes to a temp dir that replaces `out_dir` only when complete. An inpainting
    dataset (one with ``Dataset.test_masks``: Facade, no edit classes) also gets
    test_masks.csv: `hole_repeats` fixed seed-`seed` holes per test image, each side `hole`
    (min, max) times the image side."""
    dataset = get_dataset(spec_name)
    spec = dataset.spec
    tmp_dir = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    try:
        stats = {"dataset": spec_name, "source": source, "width": width, "height": height,
                 "size_threshold": threshold, "box_rule": box_rule, "test_box_seed": seed,
                 "boxes_listed_from": min(threshold, list_threshold or threshold)}
        all_boxes = []
        for split_name in SPLITS:
            split = resize_split(splits[split_name], width, height)
            check_labels(split, spec, f"{spec_name}/{split_name}")
            split = instances_for_rule(split, spec, box_rule)
            write_split(os.path.join(tmp_dir, f"{split_name}.h5"), split)
            rows = box_rows(split_name, split, spec, threshold, box_rule)
            listed = (box_rows(split_name, split, spec, list_threshold, box_rule)
                      if list_threshold is not None and list_threshold < threshold else rows)
            if spec.edit_classes and not rows:  # nothing to train or evaluate on: no output
                classes = ", ".join(spec.label_names[c] for c in spec.edit_classes)
                raise ValueError(f"{spec_name}/{split_name}: none of the {len(split.names)} "
                                 f"images has an eligible box (size_threshold {threshold}; "
                                 f"edit classes {classes})")
            all_boxes += listed
            with_box = {row[1] for row in rows}
            stats[split_name] = {
                "images": len(split.names),
                "images_without_eligible_box": len(split.names) - len(with_box),
                "eligible_boxes_per_class": {spec.label_names[label]: count for label, count in
                                             sorted(Counter(row[2] for row in rows).items())}}
            if split_name == "test":
                test_rows, skipped = test_box_rows(split, spec, threshold, box_rule, seed)
                write_csv(os.path.join(tmp_dir, "test_boxes.csv"), TEST_BOX_COLUMNS, test_rows)
                stats["test"]["test_boxes"] = len(test_rows)
                stats["test"]["skipped_images"] = skipped
        write_csv(os.path.join(tmp_dir, "boxes.csv"), BOX_COLUMNS, all_boxes)
        if dataset.test_masks is not None:
            masks = dataset.test_masks(resize_split(splits["test"], width, height),
                                      repeats=hole_repeats, seed=seed, hole=tuple(hole))
            write_csv(os.path.join(tmp_dir, "test_masks.csv"),
                      ["image", "repeat", "x1", "y1", "x2", "y2"], masks)
            stats["test"]["test_masks"] = len(masks)
            stats["hole_fraction"] = list(hole)
            stats["holes_per_test_image"] = hole_repeats
        with open(os.path.join(tmp_dir, "stats.json"), "w") as f:
            json.dump(stats, f, indent=2)
        replace_dir(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return stats
