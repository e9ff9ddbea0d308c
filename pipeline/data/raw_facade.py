"""CMP Facade (base and extended): the last 8 base images test, the other 598 train; the
seed-679 test holes of Table 3."""
from __future__ import annotations

import glob
import os

import numpy as np

from pipeline.data.datasets import SplitArrays, get_spec
from pipeline.data.raw_files import (FACADE_PREFIX, FACADE_ZIPS, SIZES, extract_once, link_folder,
                                     load_components_sample, load_samples, missing_raw_data,
                                     stable_key)


def facade_present(raw_dir: str) -> bool:
    return all(glob.glob(os.path.join(raw_dir, "facade", part, f"{prefix}*.jpg"))
               for part, prefix in FACADE_PREFIX.items())


def extract_facade(raw_dir: str, dest_dir: str) -> str:
    if facade_present(raw_dir):
        return raw_dir
    facade_dir = os.path.join(dest_dir, "facade")
    missing = []
    for part, zip_name in FACADE_ZIPS.items():
        if os.path.isdir(os.path.join(raw_dir, "facade", part)):
            if dest_dir != raw_dir:
                link_folder(os.path.join(raw_dir, "facade", part), os.path.join(facade_dir, part))
            continue
        candidates = [os.path.join(raw_dir, "facade", zip_name), os.path.join(raw_dir, zip_name)]
        zip_path = next((p for p in candidates if os.path.isfile(p)), None)
        if zip_path is None:
            missing.append(zip_name)
            continue
        prefix = FACADE_PREFIX[part]

        def select(name, part=part, prefix=prefix):
            base = name.replace("\\", "/").rsplit("/", 1)[-1]
            ok = base.startswith(prefix) and base.endswith((".jpg", ".png", ".xml"))
            return f"{part}/{base}" if ok else None

        if extract_once(zip_path, facade_dir, select, part) == 0:
            raise ValueError(f"{zip_path}: no {prefix}*.jpg/png files inside")
    if facade_present(dest_dir):
        return dest_dir
    if missing:  # e.g. only CMP_facade_DB_base.zip: base is extracted, extended is what's missing
        raise missing_raw_data("facade", raw_dir, missing, "facade")
    return dest_dir  # an archive without its images: the reader names the folder


def read_facade(raw_dir, test_count, progress, workers):
    spec, size = get_spec("facade"), SIZES["facade"]
    found = {}
    for part, prefix in FACADE_PREFIX.items():
        folder = os.path.join(raw_dir, "facade", part)
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"CMP Facade: folder {folder} missing; run `python -m stages.download facade "
                f"--raw {raw_dir}` or put {FACADE_ZIPS[part]} (https://cmp.felk.cvut.cz/"
                f"~tylecr1/facade/) in {os.path.join(raw_dir, 'facade')}/")
        photos = sorted(glob.glob(os.path.join(folder, f"{prefix}*.jpg")))
        found[part] = []
        for photo_path in photos:
            label_path = photo_path[:-4] + ".png"
            if not os.path.isfile(label_path):
                raise FileNotFoundError(f"{label_path}: label missing for {photo_path}")
            found[part].append((photo_path, label_path))
    if len(found["base"]) <= test_count:
        raise ValueError(f"{os.path.join(raw_dir, 'facade', 'base')}: {len(found['base'])} "
                         f"images, need more than the {test_count} test images")
    cut = len(found["base"]) - test_count
    chosen = {"train": found["base"][:cut] + found["extended"], "test": found["base"][cut:]}

    def name_of(item):
        return os.path.basename(item[0])[:-4]

    return {split: load_samples(
                lambda item: load_components_sample(item, spec, size, spec.mask_background),
                items, [name_of(i) for i in items], size, f"facade {split}", progress, workers)
            for split, items in chosen.items()}


def facade_test_masks(test: SplitArrays, repeats: int = 20, seed: int = 679,
                      hole=(0.375, 0.5)) -> list:
    """The fixed inpainting holes of the Facade test set: ``repeats`` rectangles per image as
    ``(image_name, repeat, x1, y1, x2, y2)`` (half-open pixels).

    Each side is a uniform integer in [hole[0], hole[1]] times the image side (default 96..128
    of 256, Globally-and-Locally-Consistent completion's training holes), placed uniformly. Each
    image draws from its own ``RandomState`` seeded by sha256(f"{seed}:{name}"), so its holes
    do not depend on the listing order or on the other images.
    """
    low, high = hole
    if not 0 < low <= high <= 1:
        raise ValueError(f"hole fractions must satisfy 0 < min <= max <= 1, got {hole}")
    height, width = test.labels.shape[1:3]
    masks = []
    for name in test.names:
        rng = np.random.RandomState(int(stable_key(f"{seed}:{name}")[:8], 16))
        for repeat in range(repeats):
            w = rng.randint(max(1, round(low * width)), max(1, round(high * width)) + 1)
            h = rng.randint(max(1, round(low * height)), max(1, round(high * height)) + 1)
            x1 = rng.randint(0, width - w + 1)
            y1 = rng.randint(0, height - h + 1)
            masks.append((name, repeat, x1, y1, x1 + w, y1 + h))
    return masks
