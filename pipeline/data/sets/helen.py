"""Relabeled Helen: its label space (11 face parts), the paper's settings, the synthetic face,
the raw reader (helenstar_release: the release's own train/ and test/ folders, instances from
connected components, the photo's background set to 0) and where the release comes from (not
downloadable here)."""
from __future__ import annotations

import glob
import os

import numpy as np

from pipeline.data.boxes import instance_map_from_components
from pipeline.data.datasets import DatasetSpec
from pipeline.data.raw_files import (extract_once, load_components_sample, load_samples,
                                     missing_raw_data, strip_to)
from pipeline.data.scene_canvas import Canvas, ellipse_mask, jittered
from pipeline.data.sets.base import Dataset

NAME = "helen"


#---------------------------------------------------------------------------------------------
# Label space and the paper's settings


_HELEN_COLOURS = [
    (0, 0, 0), (255, 204, 153), (128, 0, 128), (255, 0, 255), (0, 0, 255), (0, 255, 255),
    (0, 255, 0), (255, 0, 0), (255, 255, 0), (128, 0, 0), (96, 64, 32),
]
_HELEN_NAMES = ["background", "skin", "left brow", "right brow", "left eye", "right eye",
                "nose", "upper lip", "inner mouth", "lower lip", "hair"]


SPEC = DatasetSpec(
    name=NAME, label_names=tuple(_HELEN_NAMES), palette=np.array(_HELEN_COLOURS, dtype=np.uint8),
    edit_classes=(2, 3, 4, 5, 6, 7, 8, 9), instances_from="components", mask_background=True)
PAPER = {"width": 256, "height": 256, "size_threshold": 0.0003}
SIZE = (PAPER["width"], PAPER["height"])
HELEN_ZIP = "helenstar_release.zip"
URL = "https://github.com/JPlin/Relabeled-HELEN-Dataset"
TITLE = "Helen"
ORIGIN = ("from https://github.com/JPlin/Relabeled-HELEN-Dataset; or extract its "
          "helenstar_release.7z there, as helenstar_release/train and /test")


def _missing(raw_dir, files):
    return missing_raw_data(TITLE, ORIGIN, raw_dir, files)


#---------------------------------------------------------------------------------------------
# Synthetic faces (instances = connected components; photo background masked to 0)


def face_scene(height, width, rng):
    c = Canvas(height, width, rng)
    g = c.grid
    cx = width * rng.uniform(0.42, 0.58)
    cy = height * rng.uniform(0.5, 0.6)
    rx, ry = width * rng.uniform(0.28, 0.36), height * rng.uniform(0.34, 0.42)
    skin = jittered(rng, (220, 180, 150), 30)
    c.paint(ellipse_mask(g, cx, cy - ry * 0.35, rx * 1.15, ry * 0.9), 10,
            jittered(rng, (60, 40, 25), 30), texture=12)  # hair
    c.paint(ellipse_mask(g, cx, cy, rx, ry), 1, skin, texture=4)
    eye_dx, eye_y = rx * rng.uniform(0.38, 0.48), cy - ry * rng.uniform(0.15, 0.28)
    eye_rx, eye_ry = rx * 0.18, ry * rng.uniform(0.05, 0.09)
    for side, (brow, eye) in ((-1, (2, 4)), (1, (3, 5))):
        ex = cx + side * eye_dx
        c.paint(ellipse_mask(g, ex, eye_y - ry * 0.16, rx * 0.22, ry * 0.04 + 0.5), brow,
                (70, 45, 30))
        c.paint(ellipse_mask(g, ex, eye_y, eye_rx, eye_ry + 0.5), eye, (240, 240, 240), texture=15)
    c.paint(ellipse_mask(g, cx, cy + ry * 0.08, rx * 0.12, ry * 0.2), 6, skin * 0.9)
    mouth_y, mouth_rx = cy + ry * 0.5, rx * rng.uniform(0.3, 0.45)
    c.paint(ellipse_mask(g, cx, mouth_y - ry * 0.04, mouth_rx, ry * 0.05 + 0.5), 7, (170, 70, 80))
    if rng.random() < 0.5:
        c.paint(ellipse_mask(g, cx, mouth_y, mouth_rx * 0.8, ry * 0.035 + 0.5), 8, (60, 20, 25))
    c.paint(ellipse_mask(g, cx, mouth_y + ry * 0.06, mouth_rx * 0.9, ry * 0.05 + 0.5), 9,
            (180, 80, 90))
    labels, _, photo = c.finish(shade=0.05)
    spec = SPEC
    photo[labels == 0] = 0  # Helen photos have their background masked (paper §4)
    return labels, instance_map_from_components(labels, spec.edit_classes), photo


#---------------------------------------------------------------------------------------------
# The raw folder


def helen_present(raw_dir: str) -> bool:
    return all(os.path.isdir(os.path.join(raw_dir, "helenstar_release", split))
               for split in ("train", "test"))


def extract_helen(raw_dir: str, dest_dir: str) -> str:
    if helen_present(raw_dir):
        return raw_dir
    zip_path = os.path.join(raw_dir, HELEN_ZIP)
    if os.path.isfile(zip_path):
        if extract_once(zip_path, dest_dir, lambda n: strip_to(n, "helenstar_release"),
                         "helenstar_release") == 0:
            raise ValueError(f"{zip_path}: no helenstar_release/ folder inside")
        return dest_dir
    if os.path.isfile(os.path.join(raw_dir, "helenstar_release.7z")):
        raise FileNotFoundError(
            f"{os.path.join(raw_dir, 'helenstar_release.7z')}: 7z archives are not extracted "
            f"automatically; run `7z x helenstar_release.7z -o{raw_dir}` before `dvc add`")
    if os.path.isdir(os.path.join(raw_dir, "helenstar_release")):
        return raw_dir  # extracted, but a split folder is missing: the reader names it
    raise _missing(raw_dir, [HELEN_ZIP])


def read_helen(raw_dir, *, progress=True, workers=1):
    """The release's own folders are the splits (the paper: "default training and testing
    datasets"; the authors' GenHelenDataset.py copies train/ and test/), each sorted by name."""
    spec, size = SPEC, SIZE
    root = os.path.join(raw_dir, "helenstar_release")
    chosen, seen = {}, {}
    for split in ("train", "test"):
        folder_path = os.path.join(root, split)
        if not os.path.isdir(folder_path):
            raise FileNotFoundError(
                f"Helen: folder {folder_path} missing; extract helenstar_release.7z (from "
                f"https://github.com/JPlin/Relabeled-HELEN-Dataset) into {raw_dir}/")
        pairs = []
        for photo_path in sorted(glob.glob(os.path.join(folder_path, "*_image.jpg"))):
            name = os.path.basename(photo_path)[:-len("_image.jpg")]
            label_path = os.path.join(folder_path, f"{name}_label.png")
            if not os.path.isfile(label_path):
                raise FileNotFoundError(f"{label_path}: label missing for {photo_path}")
            if name in seen:
                raise ValueError(f"{photo_path}: name {name!r} also in {seen[name]}")
            seen[name] = photo_path
            pairs.append((name, (photo_path, label_path)))
        if not pairs:
            raise ValueError(f"{folder_path}: no *_image.jpg files (the Helen {split} split)")
        chosen[split] = pairs
    return {split: load_samples(
                lambda item: load_components_sample(item, spec, size, spec.mask_background),
                [item for _, item in pairs], [name for name, _ in pairs], size,
                f"helen {split}", progress, workers)
            for split, pairs in chosen.items()}


def _helen_instructions(raw_dir: str) -> str:
    return (f"Helen (relabeled) is not downloadable here: get helenstar_release.7z from "
            f"{URL} (its README links the archive), extract it so that "
            f"{os.path.abspath(raw_dir)}/helenstar_release/train/ and .../test/ hold the "
            f"*_image.jpg and *_label.png files (7z x helenstar_release.7z -o{raw_dir}), or put "
            f"a helenstar_release.zip in {os.path.abspath(raw_dir)}/")


def fetch_helen(raw_dir: str, _retries: int) -> None:
    """Not downloadable here: say where the release goes unless it is there."""
    if not helen_present(raw_dir) and not os.path.isfile(os.path.join(raw_dir, HELEN_ZIP)):
        print(_helen_instructions(raw_dir))
        raise _missing(raw_dir, [HELEN_ZIP])


DATASET = Dataset(
    spec=SPEC, title=TITLE, paper=PAPER, paper_images=(1800, 299), stream=1, scene=face_scene,
    extract=extract_helen, read=read_helen, fetch=fetch_helen, archives=(HELEN_ZIP,))
