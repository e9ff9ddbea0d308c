"""The embedded synthetic default: deterministic street / indoor / face scenes that mirror the
real datasets' label spaces (Cityscapes ids, NYU 894-class ids, Helen parts), with instance ids
and a rendered "photo" so the translator G_I and FID have real work to do; and rectilinear
building facades in the CMP Facade label space for the inpainting experiment (Table 3), where
the photo is what the models complete.

Every image is a pure function of (seed, dataset, split, index): no global RNG, no file order.
The street scenes are pipeline.data.street_scene's, the drawing primitives
pipeline.data.scene_canvas's.
"""
from __future__ import annotations

import numpy as np

from pipeline.data.boxes import instance_map_from_components
from pipeline.data.datasets import NYU_IDS, SplitArrays, get_spec
from pipeline.data.scene_canvas import Canvas, ellipse_mask, jittered, rect_mask
from pipeline.data.street_scene import street_scene


#---------------------------------------------------------------------------------------------
# Indoor scenes (NYU 894-class ids; instances = label*1000 + k as the NYU maps are built)


def indoor_scene(height, width, rng):
    c = Canvas(height, width, rng)
    g = c.grid
    ids = NYU_IDS
    ceiling = int(height * rng.uniform(0.05, 0.15))
    floor_top = int(height * rng.uniform(0.55, 0.75))
    c.paint(rect_mask(g, 0, 0, width, ceiling), ids["ceiling"], (225, 225, 220), instance=True)
    c.paint(rect_mask(g, 0, ceiling, width, floor_top), ids["wall"], jittered(rng, (200, 190, 170)),
            instance=True)
    c.paint(rect_mask(g, 0, floor_top, width, height), ids["floor"], jittered(rng, (130, 95, 60)),
            instance=True, texture=10)
    for name, colour, count in (("window", (180, 210, 240), rng.integers(0, 3)),
                                ("picture", (150, 60, 60), rng.integers(0, 3))):
        for _ in range(count):
            w, h = rng.uniform(0.1, 0.25) * width, rng.uniform(0.15, 0.3) * height
            x, y = rng.uniform(0, width - w), rng.uniform(ceiling, max(ceiling + 1, floor_top - h))
            c.paint(rect_mask(g, x, y, x + w, y + h), ids[name], jittered(rng, colour),
                    instance=True)
    furniture = [("cabinet", (110, 80, 50)), ("table", (150, 110, 70)), ("chair", (90, 60, 40)),
                 ("sofa", (80, 90, 130)), ("bed", (210, 200, 230))]
    for _ in range(rng.integers(1, 4)):
        name, colour = furniture[rng.integers(len(furniture))]
        w, h = rng.uniform(0.15, 0.35) * width, rng.uniform(0.2, 0.4) * height
        bottom = rng.uniform(floor_top + 1, height)
        x = rng.uniform(0, width - w)
        shape = rect_mask(g, x, bottom - h, x + w, bottom)
        if name in ("table", "chair"):  # a top and legs
            top = rect_mask(g, x, bottom - h, x + w, bottom - h * 0.7)
            legs = rect_mask(g, x, bottom - h, x + w * 0.15, bottom) | rect_mask(g, x + w * 0.85,
                                                                         bottom - h, x + w, bottom)
            shape = top | legs
        c.paint(shape, ids[name], jittered(rng, colour), instance=True)
    return c.finish()


#---------------------------------------------------------------------------------------------
# Faces (Helen parts; instances = connected components; photo background masked to 0)


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
    spec = get_spec("helen")
    photo[labels == 0] = 0  # Helen photos have their background masked (paper §4)
    return labels, instance_map_from_components(labels, spec.edit_classes), photo


#---------------------------------------------------------------------------------------------
# Building facades (CMP Facade labels; the photo is the inpainting target)

_FACADE = {name: label for label, name in enumerate(get_spec("facade").label_names)}
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


SCENES = {"cityscapes": street_scene, "nyu": indoor_scene, "helen": face_scene,
          "facade": facade_scene}
# Fixed per-dataset streams (a new dataset must not shift the others' images).
DATASET_CODES = {"cityscapes": 0, "helen": 1, "nyu": 2, "facade": 3}


def generate_split(dataset: str, split: str, count: int, height: int, width: int,
                   seed: int) -> SplitArrays:
    """`count` synthetic images of one split; image i depends only on (seed, dataset, split, i)."""
    if dataset not in SCENES:
        raise ValueError(f"no synthetic generator for dataset {dataset!r} "
                         f"(available: {', '.join(SCENES)})")
    split_code = {"train": 0, "test": 1}[split]
    dataset_code = DATASET_CODES[dataset]
    labels, instances, photos, names = [], [], [], []
    for index in range(count):
        rng = np.random.default_rng([seed, dataset_code, split_code, index])
        label_map, instance_map, photo = SCENES[dataset](height, width, rng)
        labels.append(label_map)
        instances.append(instance_map)
        photos.append(photo)
        names.append(f"{dataset}_{split}_{index:05d}")
    return SplitArrays(names=names, labels=np.stack(labels), instances=np.stack(instances),
                       photos=np.stack(photos))
