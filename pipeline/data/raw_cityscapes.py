"""Cityscapes from its raw folder or archives: gtFine label and instance maps with their
leftImg8bit photos (train = gtFine/train, test = gtFine/val, sorted by path), a train-only
folder split by sequence."""
from __future__ import annotations

import glob
import os

import numpy as np

from pipeline.data.datasets import get_spec
from pipeline.data.raw_files import (CITYSCAPES_ZIPS, SIZES, check_label_range, check_same_size,
                                     extract_once, link_folder, load_samples, missing_raw_data,
                                     read_index_map, read_photo, resize_ids, resize_photo, strip_to)


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


def extract_cityscapes(raw_dir: str, dest_dir: str) -> str:
    if cityscapes_present(raw_dir) or cityscapes_train_only(raw_dir):
        return raw_dir
    missing = []
    for top, zip_name in CITYSCAPES_ZIPS.items():
        zip_path = os.path.join(raw_dir, zip_name)
        if all(os.path.isdir(os.path.join(raw_dir, top, s)) for s in ("train", "val")):
            if dest_dir != raw_dir:  # the other half comes from its zip
                link_folder(os.path.join(raw_dir, top), os.path.join(dest_dir, top))
            continue
        if not os.path.isfile(zip_path):
            missing.append(zip_name)
            continue

        def select(name, top=top):
            inner = strip_to(name, top)
            if inner is None or inner.split("/")[1] not in ("train", "val"):
                return None
            if top == "gtFine" and not name.endswith(("_labelIds.png", "_instanceIds.png")):
                return None
            return inner if name.endswith(".png") else None

        if extract_once(zip_path, dest_dir, select, top) == 0:
            raise ValueError(f"{zip_path}: no {top}/train or {top}/val images inside "
                             f"(expected the official {zip_name})")
    if cityscapes_present(dest_dir):
        return dest_dir
    if missing:  # what is there is extracted (once); name what is not
        raise missing_raw_data("cityscapes", raw_dir, missing)
    return dest_dir  # the archives lack a split: the reader names the folder


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
    check_same_size(label_path, labels.shape, photo_path, photo.shape)
    check_same_size(inst_path, instances.shape, label_path, labels.shape)
    check_label_range(label_path, labels, spec.num_labels)
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


def read_cityscapes(raw_dir, progress, workers, val_sequences=()):
    """The official train / val splits; a folder with a train split only (cityscapes_train_only)
    is split by sequence: the frames of `val_sequences` are the test split."""
    spec, size = get_spec("cityscapes"), SIZES["cityscapes"]

    def load(items, names, desc):
        return load_samples(lambda item: _load_cityscapes_sample(item, spec, size),
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
