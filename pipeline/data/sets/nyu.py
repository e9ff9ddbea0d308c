"""NYU Depth v2 (labeled): its label space (894 named classes, the VOC colour map), the
paper's settings, the synthetic indoor scene, the raw reader (nyu_depth_v2_labeled.mat: the
first 1200 frames train, the next 249 test, in file order; the 894 class names checked against
nyu894_names.tsv) and its public download."""
from __future__ import annotations

import os

import h5py
import numpy as np

from pipeline.data.datasets import DatasetSpec, voc_colormap
from pipeline.data.raw_files import (check_label_range, load_samples, missing_raw_data,
                                     resize_ids, resize_photo)
from pipeline.data.scene_canvas import Canvas, jittered, rect_mask
from pipeline.data.sets.base import Dataset, Source

NAME = "nyu"


#---------------------------------------------------------------------------------------------
# Label space and the paper's settings

# NYU Depth v2 labeled: 894 named classes (ids 1..894 in the .mat file), 0 = unlabeled.
NYU_NUM_LABELS = 895
# Ids of the names we need (from the file's `names`; checked in tests against the shared dump).
NYU_IDS = {"cabinet": 3, "ceiling": 4, "chair": 5, "floor": 11, "table": 19, "wall": 21,
           "door": 28, "window": 59, "picture": 64, "sofa": 83, "bed": 157}


def _nyu_names() -> tuple:
    names = [f"nyu_class_{i}" for i in range(NYU_NUM_LABELS)]
    names[0] = "unlabeled"
    for name, label in NYU_IDS.items():
        names[label] = name
    return tuple(names)


SPEC = DatasetSpec(
    name=NAME, label_names=_nyu_names(), palette=voc_colormap(NYU_NUM_LABELS),
    edit_classes=tuple(NYU_IDS[n] for n in
                       ("cabinet", "chair", "floor", "table", "wall", "window", "picture")),
    instances_from="ids", mask_background=False)
PAPER = {"width": 192, "height": 144, "size_threshold": 0.02}
SIZE = (PAPER["width"], PAPER["height"])
NYU_FILE = "nyu_depth_v2_labeled.mat"
NYU_URL = "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat"
TITLE = "NYU Depth v2"
ORIGIN = ("run `python -m stages.download nyu --raw {raw}` or download "
          f"{NYU_URL} (2.8 GB)")
SOURCES = (
    Source(NYU_URL, NYU_FILE,
           note="NYU Depth v2 labeled set, 1449 frames, ~2.8 GB MATLAB v7.3 (HDF5); size and "
                "sha256 unknown offline"),
)


def _missing(raw_dir, files):
    return missing_raw_data(TITLE, ORIGIN, raw_dir, files)


#---------------------------------------------------------------------------------------------
# Synthetic indoor scenes (instances = label*1000 + k as the NYU maps are built)


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
# The raw file

# NYU's 894 class names in id order (a text dump of the dataset's classMapping40.mat): the .mat's
# own `names` are checked against it so that every label id means what our palette says.
NYU_NAMES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nyu894_names.tsv")


def nyu_present(raw_dir: str) -> bool:
    return os.path.isfile(os.path.join(raw_dir, NYU_FILE))


def check_nyu(raw_dir: str, _dest_dir: str) -> str:
    if not nyu_present(raw_dir):
        raise _missing(raw_dir, [NYU_FILE])
    return raw_dir


def _normalise_name(name: str) -> str:
    return " ".join(name.split()).lower()


def read_nyu_names_file(path: str) -> list:
    """Class names by 894-class id (index 0 = id 1) from a ``nyu894_to_40.txt``-style file
    (``id<TAB>name<TAB>id40`` lines, '#' comments)."""
    names = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            names[int(fields[0])] = fields[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise ValueError(f"{path}: class ids are not 1..{len(names)}")
    return [names[i] for i in range(1, len(names) + 1)]


def _matlab_string(dataset) -> str:
    if dataset.attrs.get("MATLAB_empty", 0):
        return ""
    return "".join(chr(c) for c in np.asarray(dataset[()]).ravel())


def read_nyu_file_names(mat: h5py.File, path: str) -> list:
    """The .mat's ``names``: object references to MATLAB char arrays (uint16)."""
    refs = np.asarray(mat["names"][()]).ravel()
    try:
        return [_matlab_string(mat[ref]) for ref in refs]
    except (KeyError, ValueError, TypeError, OSError) as err:
        raise ValueError(f"{path}: 'names' is not a list of MATLAB strings ({err})") from None


def nyu_label_lookup(file_names, expected_names=None, path="") -> np.ndarray:
    """Lookup table file label id -> our label id, matched by class name.

    ``expected_names`` (our id space, index 0 = id 1) defaults to the file's own list; either
    way every class in ``NYU_IDS`` must appear in the file and land on its NYU_IDS id.
    """
    file_norm = [_normalise_name(n) for n in file_names]
    expected = file_norm if expected_names is None else [_normalise_name(n)
                                                         for n in expected_names]
    our_id = {name: i + 1 for i, name in enumerate(expected)}
    for name, label in NYU_IDS.items():
        if name not in file_norm:
            raise ValueError(f"{path}: class {name!r} (NYU id {label}) is not in the file's "
                             f"names; the file's class list differs from the expected one")
        if our_id.get(name) != label:
            raise ValueError(f"{path}: class {name!r} is id {our_id.get(name)} in the "
                             f"{'file' if expected_names is None else 'expected'} class list, "
                             f"the pipeline expects id {label}")
    lookup = np.zeros(len(file_names) + 1, dtype=np.int64)
    unknown = []
    for file_id, name in enumerate(file_norm, start=1):
        if name in our_id:
            lookup[file_id] = our_id[name]
        else:
            unknown.append(file_names[file_id - 1])
    if unknown:
        raise ValueError(f"{path}: {len(unknown)} class name(s) not in the expected list, e.g. "
                         f"{unknown[:3]}")
    return lookup


def _nyu_frame(mat, index, lookup, spec, size, path):
    try:
        image = np.asarray(mat["images"][index]).transpose(2, 1, 0)      # (3,W,H) -> (H,W,3)
        file_labels = np.asarray(mat["labels"][index]).T.astype(np.int64)  # (W,H) -> (H,W)
        instances = np.asarray(mat["instances"][index]).T.astype(np.int64)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: cannot read frame {index} ({err})") from None
    if file_labels.max(initial=0) >= len(lookup):
        raise ValueError(f"{path}: frame {index} has label value {int(file_labels.max())} "
                         f"outside the file's {len(lookup) - 1} names")
    labels = lookup[file_labels]
    check_label_range(f"{path} frame {index}", labels, spec.num_labels)
    objects = (labels > 0) & (instances > 0)
    instance_map = np.where(objects, labels * 1000 + instances, labels)
    return (resize_ids(labels, size), resize_ids(instance_map, size),
            resize_photo(np.ascontiguousarray(image, dtype=np.uint8), size))


def read_nyu(raw_dir, *, progress=True, workers=1, nyu_split=(1200, 249),
             nyu_names_file=NYU_NAMES_FILE):
    """The first nyu_split[0] frames train, the next nyu_split[1] test (file order), labels
    remapped by name to nyu_names_file's ids (None keeps the file's own order, after
    checking the edit classes sit on their NYU_IDS ids). Sequential: h5py serialises reads
    (`workers` is not used)."""
    spec, size = SPEC, SIZE
    split_sizes, names_file = nyu_split, nyu_names_file
    path = os.path.join(raw_dir, NYU_FILE)
    if not os.path.isfile(path):
        raise _missing(raw_dir, [NYU_FILE])
    try:
        # A 128 MB chunk cache: the real file is chunked and compressed, and a chunk may span
        # several frames; sequential frame reads then decompress each chunk once.
        mat = h5py.File(path, "r", rdcc_nbytes=128 << 20, rdcc_nslots=10007)
    except OSError as err:
        raise ValueError(f"{path}: not a readable MATLAB v7.3 (HDF5) file, truncated or "
                         f"corrupt? ({err})") from None
    with mat:
        for key in ("images", "labels", "instances", "names"):
            if key not in mat:
                raise ValueError(f"{path}: no '{key}' dataset (not the NYU labeled .mat)")
        count = mat["images"].shape[0]
        if (mat["images"].ndim != 4 or mat["images"].shape[1] != 3
                or mat["labels"].shape != mat["images"].shape[:1] + mat["images"].shape[2:]
                or mat["instances"].shape != mat["labels"].shape):
            raise ValueError(f"{path}: unexpected shapes images {mat['images'].shape}, labels "
                             f"{mat['labels'].shape}, instances {mat['instances'].shape}")
        n_train, n_test = split_sizes
        if count < n_train + n_test:
            raise ValueError(f"{path}: {count} frames, the split needs {n_train} + {n_test}")
        expected = read_nyu_names_file(names_file) if names_file else None
        lookup = nyu_label_lookup(read_nyu_file_names(mat, path), expected, path)
        splits = {}
        # Streamed one frame at a time: h5py reads only that frame's slab (peak memory is a
        # few frames plus the small output arrays). Sequential: h5py serialises reads anyway.
        for split, start, n in (("train", 0, n_train), ("test", n_train, n_test)):
            indices = list(range(start, start + n))
            splits[split] = load_samples(
                lambda i: _nyu_frame(mat, i, lookup, spec, size, path), indices,
                [f"nyu_{i + 1:04d}" for i in indices], size, f"nyu {split}", progress, 1)
    return splits


def fetch_nyu(raw_dir: str, retries: int) -> None:
    """Download the .mat (public) unless it is there."""
    if not nyu_present(raw_dir):
        fetch_sources(SOURCES, raw_dir, retries)


DATASET = Dataset(
    spec=SPEC, title=TITLE, paper=PAPER, paper_images=(1200, 249), stream=2, scene=indoor_scene,
    extract=check_nyu, read=read_nyu, fetch=fetch_nyu, sources=SOURCES,
    # the authors' BBox_NYU.json: 249 entries (AUTHOR_CODE_FACTS.md §6)
    authors_test_boxes={"test_boxes": 249, "test_images": 249, "size": "192x144, threshold 0.02"})
