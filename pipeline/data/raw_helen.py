"""Relabeled Helen from helenstar_release: the release's own train/ and test/ folders,
instances from connected components, the photo's background set to 0."""
from __future__ import annotations

import glob
import os

from pipeline.data.datasets import get_spec
from pipeline.data.raw_files import (HELEN_ZIP, SIZES, extract_once, load_components_sample,
                                     load_samples, missing_raw_data, strip_to)


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
    raise missing_raw_data("helen", raw_dir, [HELEN_ZIP])


def read_helen(raw_dir, progress, workers):
    """The release's own folders are the splits (the paper: "default training and testing
    datasets"; the authors' GenHelenDataset.py copies train/ and test/), each sorted by name."""
    spec, size = get_spec("helen"), SIZES["helen"]
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
