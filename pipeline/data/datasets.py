"""What describes a dataset's label space (``DatasetSpec``; each dataset's own, with its label
ids, palette and edit classes, is in the registry pipeline.data.sets), colour <-> label, and the
prepared-split HDF5 format.

A prepared dataset directory (written by ``stages/prepare.py``) holds::

    train.h5, test.h5   labels (N,H,W) uint16, instances (N,H,W) int32, photos (N,H,W,3) uint8,
                        names (N,) utf-8 strings
    boxes.csv           every eligible box: split,image,label,x1,y1,x2,y2,area_fraction
    test_boxes.csv      the one seed-679 test box per test image (see pipeline.data.boxes)

Colour maps Yc are not stored: they are ``palette[labels]`` for the dataset's palette.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from pipeline.atomic import atomic_path

#---------------------------------------------------------------------------------------------
# Dataset descriptions (each dataset's own: pipeline.data.sets)


def voc_colormap(n: int) -> np.ndarray:
    """The PASCAL VOC bit-interleaved colour map (what pix2pixHD uses for > 35 labels)."""
    ids = np.arange(n)
    colours = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (ids >> (3 * shift + channel)) & 1
            colours[:, channel] |= bit << (7 - shift)
    return colours.astype(np.uint8)


@dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline needs to know about one dataset's label space."""
    name: str
    label_names: tuple          # name of each label id 0..num_labels-1
    palette: np.ndarray         # (num_labels, 3) uint8, pairwise distinct
    edit_classes: tuple         # label ids a box may be drawn for
    instances_from: str         # "ids": instance map from the data; "components": connected parts
    mask_background: bool       # photo set to 0 where label == 0 (Helen)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


#---------------------------------------------------------------------------------------------
# Colour <-> label


def labels_to_colour(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Sc -> Yc: (H,W) ids -> (H,W,3) uint8 palette colours."""
    if labels.max(initial=0) >= len(palette):
        raise ValueError(f"label id {int(labels.max())} outside the palette "
                         f"(0..{len(palette) - 1})")
    return palette[labels]


def colour_to_labels(colour: np.ndarray, palette: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Nearest palette colour (squared RGB distance) for each pixel: (...,3) uint8/float -> ids."""
    flat = np.asarray(colour, dtype=np.float32).reshape(-1, 3)
    pal = palette.astype(np.float32)
    out = np.empty(len(flat), dtype=np.int64)
    pal_sq = (pal ** 2).sum(1)
    for start in range(0, len(flat), chunk):
        block = flat[start:start + chunk]
        # |c - p|^2 = |c|^2 - 2 c.p + |p|^2; |c|^2 is constant per pixel.
        out[start:start + chunk] = np.argmin(pal_sq[None, :] - 2.0 * block @ pal.T, axis=1)
    return out.reshape(colour.shape[:-1])


#---------------------------------------------------------------------------------------------
# Prepared split storage


@dataclass
class SplitArrays:
    names: list
    labels: np.ndarray      # (N,H,W) uint16
    instances: np.ndarray   # (N,H,W) int32
    photos: np.ndarray      # (N,H,W,3) uint8


def write_split(path: str, split: SplitArrays) -> None:
    """Write one split atomically (pipeline.atomic)."""
    n = len(split.names)
    if not (split.labels.shape[0] == split.instances.shape[0] == split.photos.shape[0] == n):
        raise ValueError(f"{path}: names/labels/instances/photos disagree on the image count")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("labels", data=split.labels.astype(np.uint16), compression="gzip",
                         track_times=False)
        f.create_dataset("instances", data=split.instances.astype(np.int32), compression="gzip",
                         track_times=False)
        f.create_dataset("photos", data=split.photos.astype(np.uint8), compression="gzip",
                         track_times=False)
        f.create_dataset("names", data=np.array(split.names, dtype=object),
                         dtype=h5py.string_dtype(), track_times=False)


def read_split(path: str) -> SplitArrays:
    """Read a prepared split fully into memory (small at the paper's resolutions)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"prepared split {path} does not exist (run the prepare stage)")
    try:
        with h5py.File(path, "r") as f:
            return SplitArrays(names=[n.decode() if isinstance(n, bytes) else n
                                      for n in f["names"][:]],
                               labels=f["labels"][:].astype(np.int64),
                               instances=f["instances"][:].astype(np.int64),
                               photos=f["photos"][:])
    except (OSError, KeyError) as err:
        raise ValueError(f"{path}: not a prepared split ({err})") from None
