"""Dataset descriptions (label ids, palettes, edit classes), the prepared-split HDF5 format and
the torch datasets that feed the trainer.

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
# Palettes

# Cityscapes label ids 0..33 with the official colours (cityscapesScripts labels.py), plus id 34
# (license plate). Ids that share a colour officially (0-4, 17/18, 26/34) get distinct colours
# here, otherwise "colour -> nearest palette colour -> label" could not round-trip.
_CITYSCAPES_COLOURS = [
    (0, 0, 0), (255, 255, 255), (255, 128, 255), (128, 255, 255), (255, 255, 128),
    (111, 74, 0), (81, 0, 81), (128, 64, 128), (244, 35, 232), (250, 170, 160),
    (230, 150, 140), (70, 70, 70), (102, 102, 156), (190, 153, 153), (180, 165, 180),
    (150, 100, 100), (150, 120, 90), (153, 153, 153), (200, 200, 200), (250, 170, 30),
    (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 0, 90),
    (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32), (0, 255, 0),
]
_CITYSCAPES_NAMES = [
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic",
    "ground", "road", "sidewalk", "parking", "rail track", "building", "wall", "fence",
    "guard rail", "bridge", "tunnel", "pole", "polegroup", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "caravan",
    "trailer", "train", "motorcycle", "bicycle", "license plate",
]

_HELEN_COLOURS = [
    (0, 0, 0), (255, 204, 153), (128, 0, 128), (255, 0, 255), (0, 0, 255), (0, 255, 255),
    (0, 255, 0), (255, 0, 0), (255, 255, 0), (128, 0, 0), (96, 64, 32),
]
_HELEN_NAMES = ["background", "skin", "left brow", "right brow", "left eye", "right eye",
                "nose", "upper lip", "inner mouth", "lower lip", "hair"]

_FACADE_COLOURS = [
    (0, 0, 0), (0, 0, 170), (0, 0, 255), (0, 85, 255), (0, 170, 255), (0, 255, 255),
    (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0), (255, 85, 0), (255, 0, 0),
    (170, 0, 0),
]
_FACADE_NAMES = ["unused", "background", "facade", "window", "door", "cornice", "sill",
                 "balcony", "blind", "deco", "molding", "pillar", "shop"]

# NYU Depth v2 labeled: 894 named classes (ids 1..894 in the .mat file), 0 = unlabeled.
NYU_NUM_LABELS = 895
# Ids of the names we need (from the file's `names`; checked in tests against the shared dump).
NYU_IDS = {"cabinet": 3, "ceiling": 4, "chair": 5, "floor": 11, "table": 19, "wall": 21,
           "door": 28, "window": 59, "picture": 64, "sofa": 83, "bed": 157}


def voc_colormap(n: int) -> np.ndarray:
    """The PASCAL VOC bit-interleaved colour map (what pix2pixHD uses for > 35 labels)."""
    ids = np.arange(n)
    colours = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (ids >> (3 * shift + channel)) & 1
            colours[:, channel] |= bit << (7 - shift)
    return colours.astype(np.uint8)


#---------------------------------------------------------------------------------------------
# Dataset descriptions


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


def _nyu_names() -> tuple:
    names = [f"nyu_class_{i}" for i in range(NYU_NUM_LABELS)]
    names[0] = "unlabeled"
    for name, label in NYU_IDS.items():
        names[label] = name
    return tuple(names)


SPECS = {
    "cityscapes": DatasetSpec(
        name="cityscapes", label_names=tuple(_CITYSCAPES_NAMES),
        palette=np.array(_CITYSCAPES_COLOURS, dtype=np.uint8),
        edit_classes=(24, 25, 26, 27, 28, 31, 32, 33), instances_from="ids",
        mask_background=False),
    "nyu": DatasetSpec(
        name="nyu", label_names=_nyu_names(), palette=voc_colormap(NYU_NUM_LABELS),
        edit_classes=tuple(NYU_IDS[n] for n in
                           ("cabinet", "chair", "floor", "table", "wall", "window", "picture")),
        instances_from="ids", mask_background=False),
    "helen": DatasetSpec(
        name="helen", label_names=tuple(_HELEN_NAMES),
        palette=np.array(_HELEN_COLOURS, dtype=np.uint8),
        edit_classes=(2, 3, 4, 5, 6, 7, 8, 9), instances_from="components",
        mask_background=True),
    "facade": DatasetSpec(
        name="facade", label_names=tuple(_FACADE_NAMES),
        palette=np.array(_FACADE_COLOURS, dtype=np.uint8),
        edit_classes=(), instances_from="components", mask_background=False),
}


def get_spec(name: str) -> DatasetSpec:
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(SPECS)}")
    return SPECS[name]


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


# The authors' count of test images with an eligible box (their BBox_cityscape.json: 376
# entries, BBox_NYU.json: 249; AUTHOR_CODE_FACTS.md §6), to set beside ours on the full real
# test split.
AUTHORS_TEST_BOXES = {
    "cityscapes": {"test_boxes": 376, "test_images": 500, "size": "256x128, threshold 0.02"},
    "nyu": {"test_boxes": 249, "test_images": 249, "size": "192x144, threshold 0.02"},
}

# The paper's prepared sizes (W, H) and box size thresholds (§4); the outside-DVC prepare CLI
# uses these, the DVC stages read theirs from params.yaml.
PAPER_SETTINGS = {
    "cityscapes": {"width": 256, "height": 128, "size_threshold": 0.02,
                   "box_list_threshold": 0.01},  # TwoSM rows train on boxes >= 0.01
    "nyu": {"width": 192, "height": 144, "size_threshold": 0.02},
    "helen": {"width": 256, "height": 256, "size_threshold": 0.0003},
    "facade": {"width": 248, "height": 242, "size_threshold": 0.0003},
}
