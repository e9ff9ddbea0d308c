"""The embedded synthetic default: deterministic scenes that mirror the real datasets' label
spaces, with instance ids and a rendered "photo" so the translator G_I and FID have real work to
do. Each dataset's scene is its registry module's (pipeline.data.sets: street scenes, indoor
rooms, faces, building facades for the inpainting experiment), drawn on
pipeline.data.scene_canvas.

Every image is a pure function of (seed, dataset, split, index): no global RNG, no file order.
Each dataset draws from its own fixed stream (``Dataset.stream``), so a new dataset does not
shift the others' images.
"""
from __future__ import annotations

import numpy as np

from pipeline.data.datasets import SplitArrays
from pipeline.data.sets import DATASETS


def generate_split(dataset: str, split: str, count: int, height: int, width: int,
                   seed: int) -> SplitArrays:
    """`count` synthetic images of one split; image i depends only on (seed, dataset, split, i)."""
    if dataset not in DATASETS:
        raise ValueError(f"no synthetic generator for dataset {dataset!r} "
                         f"(available: {', '.join(DATASETS)})")
    split_code = {"train": 0, "test": 1}[split]
    scene, dataset_code = DATASETS[dataset].scene, DATASETS[dataset].stream
    labels, instances, photos, names = [], [], [], []
    for index in range(count):
        rng = np.random.default_rng([seed, dataset_code, split_code, index])
        label_map, instance_map, photo = scene(height, width, rng)
        labels.append(label_map)
        instances.append(instance_map)
        photos.append(photo)
        names.append(f"{dataset}_{split}_{index:05d}")
    return SplitArrays(names=names, labels=np.stack(labels), instances=np.stack(instances),
                       photos=np.stack(photos))
