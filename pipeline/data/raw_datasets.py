"""Readers that turn the official raw archives (extracted under one raw folder) into
``SplitArrays`` at the paper's resolution.

Raw folder layout (one folder may hold all four datasets)::

    gtFine/{train,val}/<city>/*_gtFine_{labelIds,instanceIds}.png      Cityscapes (val = test)
    leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
    nyu_depth_v2_labeled.mat                                            NYU Depth v2 labeled
    helenstar_release/{train,test}/*_image.jpg, *_label.png             relabeled Helen
    facade/base/cmp_b*.{jpg,png}, facade/extended/cmp_x*.{jpg,png}      CMP Facade

Archives (gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip, helenstar_release.zip,
CMP_facade_DB_{base,extended}.zip) lying in the raw folder are extracted on first use, into a
separate extraction folder when one is given (the pipeline's artifacts/raw/<dataset>: the
raw folder that `data.dvc` tracks is then never written).

Resizing: label and instance maps use PIL NEAREST (as the authors' loader); photos use PIL BOX,
i.e. area averaging (the authors' loader uses PIL BICUBIC, which PIL also anti-aliases when
shrinking; the two differ only in sharpness). Images are stretched to the target size, whatever
their aspect ratio (Cityscapes and NYU keep theirs exactly; Helen and Facade images vary).

Splits (all deterministic, independent of file-system listing order):

- Cityscapes: train = gtFine/train (2975), test = gtFine/val (500), sorted by relative path.
- NYU: train = the first 1200 frames of the .mat in file order, test = the next 249 (as the
  authors' code); the remaining frames are unused.
- Helen: the release's own train/ and test/ folders, each sorted by name (the paper: "default
  training and testing datasets", as the authors' code; the paper's 1800 / 299 counts do not
  match the release's folders and are not imposed).
- Facade: base (cmp_b*, 378) and extended (cmp_x*, 228) = 606 images. Test = the last 8 base
  images in sorted name order (cmp_b0371..cmp_b0378), train = the other 598, sorted (base first).

Instance maps: Cityscapes from instanceIds (id*1000+k); NYU = label*1000 + instance where both are
> 0, else the plain label; Helen and Facade from connected components of the resized label map
(``boxes.instance_map_from_components``; under the authors' box rule the prepare step regroups
Helen to one instance per class, see pipeline.data.preparation). Helen photos are set to 0 where the
label is 0.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline.data.boxes import instance_map_from_components
from pipeline.data.datasets import NYU_IDS, SplitArrays, get_spec
from pipeline.atomic import atomic_open, move_into_place

SIZES = {"cityscapes": (256, 128), "nyu": (192, 144), "helen": (256, 256), "facade": (248, 242)}
PHOTO_FILTER = Image.BOX
NYU_FILE = "nyu_depth_v2_labeled.mat"
NYU_URL = "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat"
CITYSCAPES_ZIPS = {"gtFine": "gtFine_trainvaltest.zip",
                   "leftImg8bit": "leftImg8bit_trainvaltest.zip"}
FACADE_ZIPS = {"base": "CMP_facade_DB_base.zip", "extended": "CMP_facade_DB_extended.zip"}
FACADE_PREFIX = {"base": "cmp_b", "extended": "cmp_x"}
FACADE_URL = "https://cmp.felk.cvut.cz/~tylecr1/facade/"
HELEN_ZIP = "helenstar_release.zip"


class MissingRawData(FileNotFoundError):
    """A real dataset's archive (or the folder it extracts to) is not in the raw folder: a user
    error whose one-line message names the missing file and where it goes (stages print it
    without a traceback)."""


# dataset -> (its name in messages, where its files come from; {raw} = the raw folder)
RAW_ORIGINS = {
    "cityscapes": ("Cityscapes", "log in at https://www.cityscapes-dataset.com/ to download it, "
                   "or set CITYSCAPES_USERNAME/CITYSCAPES_PASSWORD and run `python -m "
                   "stages.download cityscapes --raw {raw}`; its extracted gtFine/ or "
                   "leftImg8bit/ folder works too"),
    "nyu": ("NYU Depth v2", "run `python -m stages.download nyu --raw {raw}` or download "
            f"{NYU_URL} (2.8 GB)"),
    "helen": ("Helen", "from https://github.com/JPlin/Relabeled-HELEN-Dataset; or extract its "
              "helenstar_release.7z there, as helenstar_release/train and /test"),
    "facade": ("CMP Facade", "run `python -m stages.download facade --raw {raw}` or download it "
               f"from {FACADE_URL}"),
}


def missing_raw_data(dataset: str, raw_dir: str, files, folder: str = "") -> MissingRawData:
    """The error for `files` (archive names) of `dataset` missing: one line naming each file
    and the folder it goes in (raw_dir, or raw_dir/folder)."""
    name, origin = RAW_ORIGINS[dataset]
    where = os.path.join(raw_dir, folder) if folder else raw_dir
    return MissingRawData(f"{name}: {' and '.join(files)} missing: put "
                          f"{'it' if len(files) == 1 else 'them'} in {where.rstrip('/')}/ "
                          f"({origin.format(raw=raw_dir)})")


#---------------------------------------------------------------------------------------------
# Images


def _open_image(path: str) -> Image.Image:
    """A fully decoded PIL image; a missing file -> FileNotFoundError, a bad one -> ValueError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file missing")
    try:
        with Image.open(path) as image:
            image.load()
            return image
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as err:
        raise ValueError(f"{path}: unreadable or truncated image ({err})") from None


def read_photo(path: str) -> np.ndarray:
    """(H,W,3) uint8 RGB."""
    return np.asarray(_open_image(path).convert("RGB"))


def read_index_map(path: str) -> np.ndarray:
    """(H,W) int64 ids of a single-channel (L, P, I, I;16) PNG; a palette PNG gives its indices."""
    image = _open_image(path)
    array = np.asarray(image)
    if array.ndim == 3:
        if not (array[..., :3] == array[..., :1]).all():
            raise ValueError(f"{path}: label map has colour channels (mode {image.mode}); "
                             f"expected one channel of label ids")
        array = array[..., 0]
    return array.astype(np.int64)


def resize_ids(ids: np.ndarray, size) -> np.ndarray:
    """Nearest-neighbour resize of an (H,W) integer map to size = (W, H); int64 result."""
    if ids.shape[::-1] == tuple(size):
        return ids.astype(np.int64)
    image = Image.fromarray(np.ascontiguousarray(ids, dtype=np.int32))
    return np.asarray(image.resize(tuple(size), Image.NEAREST)).astype(np.int64)


def resize_photo(photo: np.ndarray, size) -> np.ndarray:
    """Area-averaging (PIL BOX) resize of an (H,W,3) uint8 photo to size = (W, H)."""
    if photo.shape[1::-1] == tuple(size):
        return photo
    return np.asarray(Image.fromarray(photo).resize(tuple(size), PHOTO_FILTER))


def _check_same_size(label_path, label_shape, other_path, other_shape):
    if label_shape[:2] != other_shape[:2]:
        raise ValueError(f"{label_path}: size {label_shape[1]}x{label_shape[0]} differs from "
                         f"{other_path} ({other_shape[1]}x{other_shape[0]})")


def _check_label_range(path, labels, num_labels):
    top = int(labels.max(initial=0))
    if top > num_labels - 1 or int(labels.min(initial=0)) < 0:
        raise ValueError(f"{path}: label value {top} outside the palette "
                         f"(0..{num_labels - 1})")


#---------------------------------------------------------------------------------------------
# Archives


def _safe_member_path(zip_path: str, name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or os.path.isabs(name):
        raise ValueError(f"{zip_path}: unsafe member path {name!r}")
    return os.path.join(*parts)


def extract_zip(zip_path: str, dest_dir: str, select) -> int:
    """Extract the members for which ``select(member_name)`` returns a relative target path
    (None skips it) into ``dest_dir``, via a staging folder renamed into place per top-level
    entry, so an interrupted extraction leaves nothing half-written. Returns the member count."""
    staging = os.path.join(dest_dir, f".extracting-{os.path.basename(zip_path)}")
    shutil.rmtree(staging, ignore_errors=True)
    count = 0
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [(m, select(m.filename)) for m in archive.infolist() if not m.is_dir()]
            members = [(m, target) for m, target in members if target]
            for member, target in tqdm(members, desc=f"extract {os.path.basename(zip_path)}",
                                       unit="file", leave=False):
                out_path = os.path.join(staging, _safe_member_path(zip_path, target))
                os.makedirs(os.path.dirname(out_path), exist_ok=True)
                with archive.open(member) as src, open(out_path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                count += 1
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"{zip_path}: corrupt or truncated zip archive ({err})") from None
    if count:
        for entry in os.listdir(staging):
            move_into_place(os.path.join(staging, entry), os.path.join(dest_dir, entry))
    shutil.rmtree(staging, ignore_errors=True)
    return count


def _strip_to(name: str, folder: str):
    """The part of a member path starting at ``folder/`` (None when it has no such folder)."""
    parts = name.replace("\\", "/").split("/")
    return "/".join(parts[parts.index(folder):]) if folder in parts[:-1] else None


#---------------------------------------------------------------------------------------------
# Presence checks and archive extraction


def cityscapes_present(raw_dir: str) -> bool:
    return all(os.path.isdir(os.path.join(raw_dir, top, split))
               for top in CITYSCAPES_ZIPS for split in ("train", "val"))


def cityscapes_train_only(raw_dir: str) -> bool:
    """A Cityscapes folder in the official layout with a train split only (no val): the video
    frames of ../shared/data/cityscapes_video, or a user's own subset. Its test split is
    chosen by sequence (`val_sequences`)."""
    return (all(os.path.isdir(os.path.join(raw_dir, top, "train")) for top in CITYSCAPES_ZIPS)
            and not any(os.path.isdir(os.path.join(raw_dir, top, "val"))
                        for top in CITYSCAPES_ZIPS))


def nyu_present(raw_dir: str) -> bool:
    return os.path.isfile(os.path.join(raw_dir, NYU_FILE))


def helen_present(raw_dir: str) -> bool:
    return all(os.path.isdir(os.path.join(raw_dir, "helenstar_release", split))
               for split in ("train", "test"))


def facade_present(raw_dir: str) -> bool:
    return all(glob.glob(os.path.join(raw_dir, "facade", part, f"{prefix}*.jpg"))
               for part, prefix in FACADE_PREFIX.items())


def _archive_stamp(zip_path: str) -> dict:
    stat = os.stat(zip_path)
    return {"archive": os.path.abspath(zip_path), "size": stat.st_size,
            "mtime": int(stat.st_mtime)}


def _extract_once(zip_path: str, dest_dir: str, select, top: str) -> int:
    """extract_zip into dest_dir, unless dest_dir/top already holds this very archive's files
    (same path, size and mtime, recorded in dest_dir/.extracted-<archive>.json). Returns the
    member count (-1 when skipped)."""
    stamp_path = os.path.join(dest_dir, f".extracted-{os.path.basename(zip_path)}.json")
    stamp = _archive_stamp(zip_path)
    if os.path.exists(os.path.join(dest_dir, top)) and os.path.isfile(stamp_path):
        try:
            with open(stamp_path) as f:
                if json.load(f) == stamp:
                    return -1
        except (OSError, ValueError):
            pass
    os.makedirs(dest_dir, exist_ok=True)
    count = extract_zip(zip_path, dest_dir, select)
    if count:
        with atomic_open(stamp_path, "w") as f:
            json.dump(stamp, f)
    return count


def _link(source: str, target: str) -> None:
    """target -> source (a folder the user extracted in the raw folder, used from the
    extraction folder without copying it)."""
    if os.path.islink(target) and os.path.realpath(target) == os.path.realpath(source):
        return
    if os.path.lexists(target):
        shutil.rmtree(target) if os.path.isdir(target) and not os.path.islink(target) \
            else os.remove(target)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.symlink(os.path.abspath(source), target)


def _extract_cityscapes(raw_dir: str, dest_dir: str) -> str:
    if cityscapes_present(raw_dir) or cityscapes_train_only(raw_dir):
        return raw_dir
    missing = []
    for top, zip_name in CITYSCAPES_ZIPS.items():
        zip_path = os.path.join(raw_dir, zip_name)
        if all(os.path.isdir(os.path.join(raw_dir, top, s)) for s in ("train", "val")):
            if dest_dir != raw_dir:  # the other half comes from its zip
                _link(os.path.join(raw_dir, top), os.path.join(dest_dir, top))
            continue
        if not os.path.isfile(zip_path):
            missing.append(zip_name)
            continue

        def select(name, top=top):
            inner = _strip_to(name, top)
            if inner is None or inner.split("/")[1] not in ("train", "val"):
                return None
            if top == "gtFine" and not name.endswith(("_labelIds.png", "_instanceIds.png")):
                return None
            return inner if name.endswith(".png") else None

        if _extract_once(zip_path, dest_dir, select, top) == 0:
            raise ValueError(f"{zip_path}: no {top}/train or {top}/val images inside "
                             f"(expected the official {zip_name})")
    if cityscapes_present(dest_dir):
        return dest_dir
    if missing:  # what is there is extracted (once); name what is not
        raise missing_raw_data("cityscapes", raw_dir, missing)
    return dest_dir  # the archives lack a split: the reader names the folder


def _extract_helen(raw_dir: str, dest_dir: str) -> str:
    if helen_present(raw_dir):
        return raw_dir
    zip_path = os.path.join(raw_dir, HELEN_ZIP)
    if os.path.isfile(zip_path):
        if _extract_once(zip_path, dest_dir, lambda n: _strip_to(n, "helenstar_release"),
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


def _extract_facade(raw_dir: str, dest_dir: str) -> str:
    if facade_present(raw_dir):
        return raw_dir
    facade_dir = os.path.join(dest_dir, "facade")
    missing = []
    for part, zip_name in FACADE_ZIPS.items():
        if os.path.isdir(os.path.join(raw_dir, "facade", part)):
            if dest_dir != raw_dir:
                _link(os.path.join(raw_dir, "facade", part), os.path.join(facade_dir, part))
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

        if _extract_once(zip_path, facade_dir, select, part) == 0:
            raise ValueError(f"{zip_path}: no {prefix}*.jpg/png files inside")
    if facade_present(dest_dir):
        return dest_dir
    if missing:  # e.g. only CMP_facade_DB_base.zip: base is extracted, extended is what's missing
        raise missing_raw_data("facade", raw_dir, missing, "facade")
    return dest_dir  # an archive without its images: the reader names the folder


def prepare_raw_dir(dataset: str, raw_dir: str, extract_dir: str | None = None) -> str:
    """Extract the archives of ``dataset`` lying in ``raw_dir`` into ``extract_dir`` (default:
    ``raw_dir`` itself) unless their folders are in ``raw_dir`` already or this very archive
    was extracted there before. Returns the folder to read the dataset from: ``raw_dir`` when
    the user extracted it there, else ``extract_dir``. The pipeline passes an extraction folder
    that is a stage output (artifacts/raw/<dataset>), so the folder `data.dvc` tracks is only
    ever read."""
    get_spec(dataset)
    dest_dir = extract_dir or raw_dir
    return {"cityscapes": _extract_cityscapes, "helen": _extract_helen,
            "facade": _extract_facade, "nyu": _check_nyu}[dataset](raw_dir, dest_dir)


def _check_nyu(raw_dir: str, _dest_dir: str) -> str:
    if not nyu_present(raw_dir):
        raise missing_raw_data("nyu", raw_dir, [NYU_FILE])
    return raw_dir


#---------------------------------------------------------------------------------------------
# Parallel sample loading


def _load_samples(load_one, items, names, size, desc, progress, workers) -> SplitArrays:
    """Run ``load_one(item) -> (labels, instances, photo)`` over items (threads; PIL releases
    the GIL while decoding) into preallocated arrays of the target size."""
    width, height = size
    n = len(items)
    split = SplitArrays(names=list(names),
                        labels=np.zeros((n, height, width), dtype=np.uint16),
                        instances=np.zeros((n, height, width), dtype=np.int32),
                        photos=np.zeros((n, height, width, 3), dtype=np.uint8))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(load_one, items)
        for i, (labels, instances, photo) in enumerate(
                tqdm(results, total=n, desc=desc, unit="img", disable=not progress)):
            split.labels[i], split.instances[i], split.photos[i] = labels, instances, photo
    return split


def _default_workers() -> int:
    return min(8, os.cpu_count() or 1)


#---------------------------------------------------------------------------------------------
# Cityscapes


def _cityscapes_missing_message(raw_dir: str, what: str) -> str:
    return (f"Cityscapes: {what} missing. Log in at https://www.cityscapes-dataset.com/, "
            f"download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip into {raw_dir}/ "
            f"(or extract them there), or set CITYSCAPES_USERNAME/CITYSCAPES_PASSWORD and run "
            f"`python -m stages.download cityscapes --raw {raw_dir}`")


def _load_cityscapes_sample(item, spec, size):
    label_path, inst_path, photo_path = item
    labels = read_index_map(label_path)
    instances = read_index_map(inst_path)
    photo = read_photo(photo_path)
    _check_same_size(label_path, labels.shape, photo_path, photo.shape)
    _check_same_size(inst_path, instances.shape, label_path, labels.shape)
    _check_label_range(label_path, labels, spec.num_labels)
    return resize_ids(labels, size), resize_ids(instances, size), resize_photo(photo, size)


def sequence_of(stem: str) -> str:
    """The sequence of a Cityscapes frame `<city>_<sequence>_<frame>`: `<city>_<sequence>`
    (the frames of one sequence are near duplicates: they are split together)."""
    return stem.rsplit("_", 1)[0]


def _cityscapes_items(raw_dir: str, folder: str):
    """([(label, instance, photo) paths], [frame stems]) of one split folder; the photo is the
    official PNG or a JPEG (the video frames)."""
    label_dir = os.path.join(raw_dir, "gtFine", folder)
    for needed in (label_dir, os.path.join(raw_dir, "leftImg8bit", folder)):
        if not os.path.isdir(needed):
            raise FileNotFoundError(_cityscapes_missing_message(raw_dir, f"folder {needed}"))
    label_paths = sorted(glob.glob(os.path.join(label_dir, "*", "*_gtFine_labelIds.png")))
    if not label_paths:
        raise FileNotFoundError(_cityscapes_missing_message(
            raw_dir, f"*_gtFine_labelIds.png files in {label_dir}/<city>/"))
    items, names = [], []
    for label_path in label_paths:
        stem = os.path.basename(label_path)[:-len("_gtFine_labelIds.png")]
        city = os.path.basename(os.path.dirname(label_path))
        inst_path = os.path.join(label_dir, city, f"{stem}_gtFine_instanceIds.png")
        photo_stem = os.path.join(raw_dir, "leftImg8bit", folder, city, f"{stem}_leftImg8bit")
        photo_path = next((photo_stem + ext for ext in (".png", ".jpg")
                           if os.path.isfile(photo_stem + ext)), photo_stem + ".png")
        for path in (inst_path, photo_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(_cityscapes_missing_message(raw_dir, path))
        items.append((label_path, inst_path, photo_path))
        names.append(stem)
    return items, names


def split_by_sequence(names, val_sequences, raw_dir: str = "") -> tuple:
    """(train indices, test indices) of frame stems `names`: every frame of a sequence in
    `val_sequences` (`<city>_<sequence>`) is a test frame, every other one a train frame.
    A named sequence with no frame, or a split left empty, is an error naming the folder."""
    sequences = [sequence_of(name) for name in names]
    unknown = sorted(set(val_sequences) - set(sequences))
    if unknown:
        raise ValueError(f"data.val_sequences: {', '.join(unknown)} not in {raw_dir} (its "
                         f"sequences: {', '.join(sorted(set(sequences)))})")
    test = [i for i, seq in enumerate(sequences) if seq in set(val_sequences)]
    train = [i for i, seq in enumerate(sequences) if seq not in set(val_sequences)]
    if not train or not test:
        raise ValueError(f"data.val_sequences: {list(val_sequences)} leaves an empty "
                         f"{'train' if not train else 'test'} split in {raw_dir}")
    return train, test


def _read_cityscapes(raw_dir, progress, workers, val_sequences=()):
    """The official train / val splits; a folder with a train split only (cityscapes_train_only)
    is split by sequence: the frames of `val_sequences` are the test split."""
    spec, size = get_spec("cityscapes"), SIZES["cityscapes"]

    def load(items, names, desc):
        return _load_samples(lambda item: _load_cityscapes_sample(item, spec, size),
                             items, names, size, desc, progress, workers)

    if cityscapes_train_only(raw_dir):
        if not val_sequences:
            raise ValueError(f"{raw_dir}: Cityscapes with a train split only: name the "
                             f"sequences to hold out as the test split in data.val_sequences "
                             f"(e.g. [aachen_000004, aachen_000005])")
        items, names = _cityscapes_items(raw_dir, "train")
        train, test = split_by_sequence(names, val_sequences, raw_dir)
        return {split: load([items[i] for i in indices], [names[i] for i in indices],
                            f"cityscapes {split}")
                for split, indices in (("train", train), ("test", test))}
    if val_sequences:
        raise ValueError(f"data.val_sequences: {raw_dir} has the official val split; "
                         f"val_sequences is for a folder with a train split only")
    return {split: load(*_cityscapes_items(raw_dir, folder), f"cityscapes {split}")
            for split, folder in (("train", "train"), ("test", "val"))}


def read_cityscapes_instance_maps(inst_dir: str, size=SIZES["cityscapes"]):
    """(names, (N, H, W) int64 instance maps) of every *_gtFine_instanceIds.png under
    `inst_dir` (recursively, sorted by relative path), resized nearest to `size` = (W, H) as
    the prepare stage does. Only the instance maps: counting eligible boxes needs no photos."""
    paths = sorted(glob.glob(os.path.join(inst_dir, "**", "*_gtFine_instanceIds.png"),
                             recursive=True))
    if not paths:
        raise FileNotFoundError(f"{inst_dir}: no *_gtFine_instanceIds.png files (give the "
                                f"gtFine/val folder of gtFine_trainvaltest.zip)")
    names = [os.path.basename(p)[:-len("_gtFine_instanceIds.png")] for p in paths]
    return names, np.stack([resize_ids(read_index_map(p), size) for p in paths])


#---------------------------------------------------------------------------------------------
# NYU Depth v2


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
    _check_label_range(f"{path} frame {index}", labels, spec.num_labels)
    objects = (labels > 0) & (instances > 0)
    instance_map = np.where(objects, labels * 1000 + instances, labels)
    return (resize_ids(labels, size), resize_ids(instance_map, size),
            resize_photo(np.ascontiguousarray(image, dtype=np.uint8), size))


def _read_nyu(raw_dir, split_sizes, names_file, progress):
    spec, size = get_spec("nyu"), SIZES["nyu"]
    path = os.path.join(raw_dir, NYU_FILE)
    if not os.path.isfile(path):
        raise missing_raw_data("nyu", raw_dir, [NYU_FILE])
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
            splits[split] = _load_samples(
                lambda i: _nyu_frame(mat, i, lookup, spec, size, path), indices,
                [f"nyu_{i + 1:04d}" for i in indices], size, f"nyu {split}", progress, 1)
    return splits


#---------------------------------------------------------------------------------------------
# Helen (relabeled)


def _stable_key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def _load_components_sample(item, spec, size, mask_background):
    photo_path, label_path = item
    photo = read_photo(photo_path)
    labels = read_index_map(label_path)
    _check_same_size(label_path, labels.shape, photo_path, photo.shape)
    _check_label_range(label_path, labels, spec.num_labels)
    labels = resize_ids(labels, size)
    photo = resize_photo(photo, size).copy()
    if mask_background:
        photo[labels == 0] = 0
    return labels, instance_map_from_components(labels, spec.edit_classes), photo


def _read_helen(raw_dir, progress, workers):
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
    return {split: _load_samples(
                lambda item: _load_components_sample(item, spec, size, spec.mask_background),
                [item for _, item in pairs], [name for name, _ in pairs], size,
                f"helen {split}", progress, workers)
            for split, pairs in chosen.items()}


#---------------------------------------------------------------------------------------------
# CMP Facade


def _read_facade(raw_dir, test_count, progress, workers):
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

    return {split: _load_samples(
                lambda item: _load_components_sample(item, spec, size, spec.mask_background),
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
        rng = np.random.RandomState(int(_stable_key(f"{seed}:{name}")[:8], 16))
        for repeat in range(repeats):
            w = rng.randint(max(1, round(low * width)), max(1, round(high * width)) + 1)
            h = rng.randint(max(1, round(low * height)), max(1, round(high * height)) + 1)
            x1 = rng.randint(0, width - w + 1)
            y1 = rng.randint(0, height - h + 1)
            masks.append((name, repeat, x1, y1, x1 + w, y1 + h))
    return masks


#---------------------------------------------------------------------------------------------
# Entry point


# NYU's 894 class names in id order (a text dump of the dataset's classMapping40.mat): the .mat's
# own `names` are checked against it so that every label id means what our palette says.
NYU_NAMES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nyu894_names.tsv")


def load_raw(dataset: str, raw_dir: str, *, nyu_split=(1200, 249), nyu_names_file=NYU_NAMES_FILE,
             facade_test=8, progress=True, workers=None,
             extract_dir: str | None = None, val_sequences=()) -> dict:
    """Read ``dataset`` from ``raw_dir`` (extracting archives found there) into
    ``{"train": SplitArrays, "test": SplitArrays}`` at the paper's size (``SIZES``).
    Archives are extracted into ``extract_dir`` (default: ``raw_dir``; see prepare_raw_dir).

    ``nyu_names_file``: optional ``nyu894_to_40.txt``-style list of the expected class names;
    with it the .mat's labels are remapped by name, without it the file's own order is kept
    (after checking the edit classes sit on their ``NYU_IDS`` ids).

    ``val_sequences``: Cityscapes in a folder with a train split only (the video frames): the
    sequences whose frames form the test split (split_by_sequence).
    """
    get_spec(dataset)
    workers = workers or _default_workers()
    raw_dir = prepare_raw_dir(dataset, raw_dir, extract_dir)
    if dataset == "cityscapes":
        return _read_cityscapes(raw_dir, progress, workers, tuple(val_sequences))
    if dataset == "nyu":
        return _read_nyu(raw_dir, nyu_split, nyu_names_file, progress)
    if dataset == "helen":
        return _read_helen(raw_dir, progress, workers)
    return _read_facade(raw_dir, facade_test, progress, workers)
