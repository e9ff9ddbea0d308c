"""CMP Facade (base and extended), the inpainting dataset of Table 3: its label space (12
classes, no edit classes), the paper's settings, the synthetic facade, the raw reader (the last 8
base images test, the other 598 train), the seed-679 test holes and its public download."""
from __future__ import annotations

import glob
import os

import numpy as np

from pipeline.data.datasets import DatasetSpec, SplitArrays
from pipeline.data.download import fetch_sources
from pipeline.data.raw_files import (extract_once, link_folder, load_components_sample,
                                     load_samples, missing_raw_data, stable_key)
from pipeline.data.scene_canvas import Canvas, jittered
from pipeline.data.sets.base import Dataset, Source

NAME = "facade"


#---------------------------------------------------------------------------------------------
# Label space and the paper's settings


_FACADE_COLOURS = [
    (0, 0, 0), (0, 0, 170), (0, 0, 255), (0, 85, 255), (0, 170, 255), (0, 255, 255),
    (85, 255, 170), (170, 255, 85), (255, 255, 0), (255, 170, 0), (255, 85, 0), (255, 0, 0),
    (170, 0, 0),
]
_FACADE_NAMES = ["unused", "background", "facade", "window", "door", "cornice", "sill",
                 "balcony", "blind", "deco", "molding", "pillar", "shop"]


SPEC = DatasetSpec(
    name=NAME, label_names=tuple(_FACADE_NAMES),
    palette=np.array(_FACADE_COLOURS, dtype=np.uint8),
    edit_classes=(), instances_from="components", mask_background=False)
PAPER = {"width": 248, "height": 242, "size_threshold": 0.0003}
SIZE = (PAPER["width"], PAPER["height"])
FACADE_ZIPS = {"base": "CMP_facade_DB_base.zip", "extended": "CMP_facade_DB_extended.zip"}
FACADE_PREFIX = {"base": "cmp_b", "extended": "cmp_x"}
FACADE_URL = "https://cmp.felk.cvut.cz/~tylecr1/facade/"
TITLE = "CMP Facade"
ORIGIN = ("run `python -m stages.download facade --raw {raw}` or download it "
          f"from {FACADE_URL}")
SOURCES = (
    Source(f"{FACADE_URL}CMP_facade_DB_base.zip", "facade/CMP_facade_DB_base.zip",
           note="CMP Facade base set (378 images); size and sha256 unknown offline"),
    Source(f"{FACADE_URL}CMP_facade_DB_extended.zip", "facade/CMP_facade_DB_extended.zip",
           note="CMP Facade extended set (228 images); size and sha256 unknown offline"),
)


def _missing(raw_dir, files, folder=""):
    return missing_raw_data(TITLE, ORIGIN, raw_dir, files, folder)


#---------------------------------------------------------------------------------------------
# Synthetic building facades (the photo is the inpainting target)


_FACADE = {name: label for label, name in enumerate(_FACADE_NAMES)}
_WALLS = [(196, 170, 130), (170, 96, 70), (210, 200, 185), (150, 150, 145), (220, 190, 120),
          (185, 130, 95)]


def _fill(c, x1, y1, x2, y2, label, colour, texture=4.0):
    """Paint the integer rectangle [x1, x2) x [y1, y2) (clipped to the canvas)."""
    height, width = c.labels.shape
    x1, x2 = max(0, int(round(x1))), min(width, int(round(x2)))
    y1, y2 = max(0, int(round(y1))), min(height, int(round(y2)))
    if x2 <= x1 or y2 <= y1:
        return
    mask = np.zeros((height, width), dtype=bool)
    mask[y1:y2, x1:x2] = True
    c.paint(mask, label, colour, texture=texture)


def facade_scene(height, width, rng):
    """A rectilinear facade: sky / neighbours (background) above, a textured wall (brick joints),
    `floors` x `columns` windows in a grid (glass with a sky reflection, some with blinds, a sill
    below, molding around or a deco pediment above), balconies across some floors, cornices
    between floors and under the roof, pillars at the edges, a door or a shop front on the
    ground floor. The photo gets a per-image exposure, a sideways light gradient and a shadow
    under every cornice, sill and balcony."""
    c = Canvas(height, width, rng)
    f = _FACADE
    top = int(height * rng.uniform(0.0, 0.15))
    ground = height * rng.uniform(0.2, 0.3)
    floors, columns = int(rng.integers(2, 5)), int(rng.integers(3, 7))
    wall = jittered(rng, _WALLS[rng.integers(len(_WALLS))], 15)
    c.paint(np.ones((height, width), dtype=bool), f["background"],
            jittered(rng, (150, 180, 215), 20), texture=3)
    _fill(c, 0, top, width, height, f["facade"], wall, texture=5)
    yy, xx = c.grid
    course = max(2, int(round(height / 40)))  # brick courses: darker mortar lines
    mortar = (((yy.astype(int) - top) % course) == 0) | \
        (((xx.astype(int) + course * (((yy.astype(int) - top) // course) % 2)) % (2 * course))
         == 0)
    c.photo[mortar & (c.labels == f["facade"])] *= 0.85
    shadows = []
    cornice_h = max(1, int(round(height * 0.03)))
    _fill(c, 0, top, width, top + cornice_h, f["cornice"], wall * 0.8, texture=3)
    shadows.append((0, top + cornice_h, width))
    if rng.random() < 0.6:
        pillar = max(1, int(round(width * 0.04)))
        for x in (0, width - pillar):
            _fill(c, x, top, x + pillar, height, f["pillar"], wall * 1.1, texture=3)
    upper_top, upper_bottom = top + cornice_h, height - ground
    storey = (upper_bottom - upper_top) / floors
    pitch = width / columns
    glass = jittered(rng, (60, 75, 95), 15)
    blinds = jittered(rng, (90, 130, 80) if rng.random() < 0.5 else (200, 195, 180), 20)
    win_w, win_h = pitch * rng.uniform(0.4, 0.6), storey * rng.uniform(0.45, 0.65)
    for floor in range(floors):
        y0 = upper_top + floor * storey
        wy1 = y0 + storey * 0.2
        wy2 = wy1 + win_h
        balcony = rng.random() < 0.3
        for col in range(columns):
            wx1 = col * pitch + (pitch - win_w) / 2
            wx2 = wx1 + win_w
            if rng.random() < 0.3:  # molding frame around the window
                _fill(c, wx1 - 1, wy1 - 1, wx2 + 1, wy2 + 1, f["molding"], wall * 1.2, texture=2)
            _fill(c, wx1, wy1, wx2, wy2, f["window"], glass, texture=6)
            x1, y1 = int(round(wx1)), int(round(wy1))
            x2, y2 = int(round(wx2)), int(round(wy2))
            if x2 > x1 and y2 > y1:  # sky reflection: brighter towards the top of the glass
                ramp = np.linspace(1.6, 0.9, y2 - y1, dtype=np.float32)[:, None, None]
                c.photo[y1:y2, x1:x2] *= ramp
            if rng.random() < 0.35:
                _fill(c, wx1, wy1, wx2, wy1 + win_h * rng.uniform(0.3, 0.9), f["blind"], blinds)
            if rng.random() < 0.25:
                _fill(c, wx1, wy1 - storey * 0.12, wx2, wy1 - 1, f["deco"], wall * 0.7,
                      texture=8)
            if not balcony:
                _fill(c, wx1 - 1, wy2, wx2 + 1, wy2 + max(1, storey * 0.06), f["sill"],
                      wall * 1.15, texture=2)
                shadows.append((int(round(wx1 - 1)), int(round(wy2 + max(1, storey * 0.06))),
                                int(round(wx2 + 1))))
        if balcony:
            by1 = wy2 - win_h * 0.35
            by2 = y0 + storey * 0.98
            _fill(c, pitch * 0.1, by1, width - pitch * 0.1, by2, f["balcony"],
                  jittered(rng, (50, 50, 55), 15), texture=10)
            bars = (c.labels == f["balcony"]) & ((xx.astype(int) % 3) == 0)
            c.photo[bars] *= 1.6
            shadows.append((int(round(pitch * 0.1)), int(round(by2)),
                            int(round(width - pitch * 0.1))))
        if floor < floors - 1 and rng.random() < 0.5:  # a string course between floors
            band = y0 + storey - cornice_h / 2
            _fill(c, 0, band, width, band + cornice_h, f["cornice"], wall * 0.85, texture=3)
            shadows.append((0, int(round(band + cornice_h)), width))
    if rng.random() < 0.5:  # shop front: wide windows over the whole ground floor
        _fill(c, 0, upper_bottom + ground * 0.15, width, height, f["shop"],
              jittered(rng, (40, 45, 60), 20), texture=8)
        _fill(c, 0, upper_bottom, width, upper_bottom + ground * 0.15, f["deco"],
              jittered(rng, (150, 40, 40), 40), texture=4)
    else:  # a door among ground-floor windows
        door = int(rng.integers(columns))
        for col in range(columns):
            x1 = col * pitch + (pitch - win_w) / 2
            if col == door:
                _fill(c, x1, upper_bottom + ground * 0.15, x1 + win_w, height, f["door"],
                      jittered(rng, (100, 65, 40), 25), texture=6)
            else:
                _fill(c, x1, upper_bottom + ground * 0.25, x1 + win_w,
                      upper_bottom + ground * 0.75, f["window"], glass, texture=6)
    for x1, y, x2 in shadows:  # cast shadow one pixel below each protrusion
        if 0 <= y < height:
            c.photo[y, max(0, x1):max(0, min(width, x2))] *= 0.6
    exposure = rng.uniform(0.75, 1.2)
    side = rng.uniform(-0.25, 0.25) * (np.arange(width, dtype=np.float32) / width - 0.5)
    c.photo *= exposure * (1.0 + side)[None, :, None]
    labels, _, photo = c.finish(shade=0.1)
    return labels, labels.astype(np.int64).copy(), photo


#---------------------------------------------------------------------------------------------
# The raw folder and the test holes


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
        raise _missing(raw_dir, missing, "facade")
    return dest_dir  # an archive without its images: the reader names the folder


def read_facade(raw_dir, *, progress=True, workers=1, facade_test=8):
    """The last `facade_test` base images (sorted by name) test, the other base images and
    the extended ones train."""
    spec, size, test_count = SPEC, SIZE, facade_test
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


def fetch_facade(raw_dir: str, retries: int) -> None:
    """Download both archives (public) unless the images are extracted there."""
    if not facade_present(raw_dir):
        fetch_sources(SOURCES, raw_dir, retries)


DATASET = Dataset(
    spec=SPEC, title=TITLE, paper=PAPER, stream=3, scene=facade_scene, extract=extract_facade,
    read=read_facade, fetch=fetch_facade,
    archives=tuple(os.path.join(folder, name) for name in FACADE_ZIPS.values()
                   for folder in ("", "facade")),
    sources=SOURCES, test_masks=facade_test_masks)
