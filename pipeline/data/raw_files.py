"""What every raw-dataset reader shares (each dataset's own reader is in pipeline.data.sets):
the message for missing data, reading and resizing images, safe zip extraction (once per archive),
and loading samples in parallel."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline.data.boxes import instance_map_from_components
from pipeline.data.datasets import SplitArrays
from pipeline.atomic import atomic_open, move_into_place


PHOTO_FILTER = Image.BOX


class MissingRawData(FileNotFoundError):
    """A real dataset's archive (or the folder it extracts to) is not in the raw folder: a user
    error whose one-line message names the missing file and where it goes (stages print it
    without a traceback)."""


def missing_raw_data(title: str, origin: str, raw_dir: str, files,
                     folder: str = "") -> MissingRawData:
    """The error for `files` (archive names) of a dataset (`title`, its files' `origin`, where
    {raw} stands for the raw folder) missing: one line naming each file and the folder it goes
    in (raw_dir, or raw_dir/folder)."""
    where = os.path.join(raw_dir, folder) if folder else raw_dir
    return MissingRawData(f"{title}: {' and '.join(files)} missing: put "
                          f"{'it' if len(files) == 1 else 'them'} in {where.rstrip('/')}/ "
                          f"({origin.format(raw=raw_dir)})")


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


def check_same_size(label_path, label_shape, other_path, other_shape):
    if label_shape[:2] != other_shape[:2]:
        raise ValueError(f"{label_path}: size {label_shape[1]}x{label_shape[0]} differs from "
                         f"{other_path} ({other_shape[1]}x{other_shape[0]})")


def check_label_range(path, labels, num_labels):
    top = int(labels.max(initial=0))
    if top > num_labels - 1 or int(labels.min(initial=0)) < 0:
        raise ValueError(f"{path}: label value {top} outside the palette "
                         f"(0..{num_labels - 1})")


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


def strip_to(name: str, folder: str):
    """The part of a member path starting at ``folder/`` (None when it has no such folder)."""
    parts = name.replace("\\", "/").split("/")
    return "/".join(parts[parts.index(folder):]) if folder in parts[:-1] else None


def _archive_stamp(zip_path: str) -> dict:
    stat = os.stat(zip_path)
    return {"archive": os.path.abspath(zip_path), "size": stat.st_size,
            "mtime": int(stat.st_mtime)}


def extract_once(zip_path: str, dest_dir: str, select, top: str) -> int:
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


def link_folder(source: str, target: str) -> None:
    """target -> source (a folder the user extracted in the raw folder, used from the
    extraction folder without copying it)."""
    if os.path.islink(target) and os.path.realpath(target) == os.path.realpath(source):
        return
    if os.path.lexists(target):
        shutil.rmtree(target) if os.path.isdir(target) and not os.path.islink(target) \
            else os.remove(target)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.symlink(os.path.abspath(source), target)


def load_samples(load_one, items, names, size, desc, progress, workers) -> SplitArrays:
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


def default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def stable_key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def load_components_sample(item, spec, size, mask_background):
    photo_path, label_path = item
    photo = read_photo(photo_path)
    labels = read_index_map(label_path)
    check_same_size(label_path, labels.shape, photo_path, photo.shape)
    check_label_range(label_path, labels, spec.num_labels)
    labels = resize_ids(labels, size)
    photo = resize_photo(photo, size).copy()
    if mask_background:
        photo[labels == 0] = 0
    return labels, instance_map_from_components(labels, spec.edit_classes), photo
