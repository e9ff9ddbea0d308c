"""Cityscapes: its label space (ids 0..34, the official colours), the paper's settings, the
synthetic street scene (pipeline.data.street_scene), the raw reader (gtFine label and instance
maps with their leftImg8bit photos: train = gtFine/train, test = gtFine/val, sorted by path; a
train-only folder, e.g. the video frames of ../shared/data/cityscapes_video, split by
sequence), the pix2pixHD-layout frames of ../shared/data/cityscapes, and its download (a login
at the Cityscapes site)."""
from __future__ import annotations

import glob
import http.cookiejar
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPException

import numpy as np

from pipeline.data.datasets import DatasetSpec
from pipeline.data.download import USER_AGENT, DownloadError, download
from pipeline.data.raw_files import (check_label_range, check_same_size, extract_once,
                                     link_folder, load_samples, missing_raw_data, read_index_map,
                                     read_photo, resize_ids, resize_photo, strip_to)
from pipeline.data.sets.base import Dataset
from pipeline.data.street_scene import street_scene

NAME = "cityscapes"


#---------------------------------------------------------------------------------------------
# Label space and the paper's settings

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


SPEC = DatasetSpec(
    name=NAME, label_names=tuple(_CITYSCAPES_NAMES),
    palette=np.array(_CITYSCAPES_COLOURS, dtype=np.uint8),
    edit_classes=(24, 25, 26, 27, 28, 31, 32, 33), instances_from="ids", mask_background=False)
PAPER = {"width": 256, "height": 128, "size_threshold": 0.02,
         "box_list_threshold": 0.01}  # TwoSM rows train on boxes >= 0.01
SIZE = (PAPER["width"], PAPER["height"])
TITLE = "Cityscapes"
ORIGIN = ("log in at https://www.cityscapes-dataset.com/ to download it, or set "
          "CITYSCAPES_USERNAME/CITYSCAPES_PASSWORD and run `python -m stages.download "
          "cityscapes --raw {raw}`; its extracted gtFine/ or leftImg8bit/ folder works too")
CITYSCAPES_ZIPS = {"gtFine": "gtFine_trainvaltest.zip",
                   "leftImg8bit": "leftImg8bit_trainvaltest.zip"}


def _missing(raw_dir, files):
    return missing_raw_data(TITLE, ORIGIN, raw_dir, files)


#---------------------------------------------------------------------------------------------
# The raw folder


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
        raise _missing(raw_dir, missing)
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


def read_cityscapes(raw_dir, *, progress=True, workers=1, val_sequences=()):
    """The official train / val splits; a folder with a train split only (cityscapes_train_only)
    is split by sequence: the frames of `val_sequences` are the test split."""
    spec, size, val_sequences = SPEC, SIZE, tuple(val_sequences)

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


def read_cityscapes_instance_maps(inst_dir: str, size=SIZE):
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


def read_pix2pixhd_frames(folder: str, sequences, size=SIZE):
    """(names, (N, H, W) int64 labels, (N, H, W) int64 instances) of the human-labelled frames
    of `sequences` in a pix2pixHD-layout Cityscapes folder (train_label/*_gtFine_labelIds.png,
    train_inst/*_gtFine_instanceIds.png: ../shared/data/cityscapes), resized nearest to `size`;
    None when it holds none of them."""
    wanted = set(sequences)
    paths = [p for p in sorted(glob.glob(os.path.join(folder, "*_label", "*_gtFine_labelIds.png")))
             if sequence_of(os.path.basename(p)[:-len("_gtFine_labelIds.png")]) in wanted]
    if not paths:
        return None
    names, labels, instances = [], [], []
    for path in paths:
        stem = os.path.basename(path)[:-len("_gtFine_labelIds.png")]
        inst = os.path.join(os.path.dirname(os.path.dirname(path)),
                            os.path.basename(os.path.dirname(path)).replace("_label", "_inst"),
                            f"{stem}_gtFine_instanceIds.png")
        names.append(stem)
        labels.append(resize_ids(read_index_map(path), size))
        instances.append(resize_ids(read_index_map(inst), size))
    return names, np.stack(labels).astype(np.int64), np.stack(instances).astype(np.int64)


#---------------------------------------------------------------------------------------------
# Download: a login at the Cityscapes site


SITE = "https://www.cityscapes-dataset.com/"
LOGIN_URL = "https://www.cityscapes-dataset.com/login/"
PACKAGE_URL = "https://www.cityscapes-dataset.com/file-handling/?packageID={}"
# Package ids of the site's file-handling endpoint.
PACKAGES = {"gtFine_trainvaltest.zip": 1, "leftImg8bit_trainvaltest.zip": 3}


def cityscapes_login(username: str, password: str, login_url: str = LOGIN_URL):
    """Log in to the Cityscapes site's form and return an urllib opener holding the session
    cookie. Raises DownloadError when the site does not accept the credentials."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.addheaders = [("User-Agent", USER_AGENT)]
    form = urllib.parse.urlencode({"username": username, "password": password,
                                   "submit": "Login"}).encode()
    try:
        with opener.open(login_url, data=form, timeout=60) as response:
            page = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, HTTPException) as err:
        raise DownloadError(f"{login_url}: login failed "
                            f"({getattr(err, 'reason', err)})") from None
    # A rejected login shows the form again (a password field); an accepted one does not.
    if not any(jar) or re.search(r'name=["\']password["\']', page):
        raise DownloadError(f"{login_url}: the site did not accept the login for "
                            f"{username!r} (check CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD)")
    return opener


def _cityscapes_instructions(raw_dir: str) -> str:
    return (f"Cityscapes needs a login at {SITE}: download gtFine_trainvaltest.zip "
            f"(package {PACKAGES['gtFine_trainvaltest.zip']}, 241 MB) and "
            f"leftImg8bit_trainvaltest.zip (package "
            f"{PACKAGES['leftImg8bit_trainvaltest.zip']}, 11 GB) and put both in "
            f"{os.path.abspath(raw_dir)}/ (or extract them there as gtFine/ and leftImg8bit/), "
            f"or set CITYSCAPES_USERNAME and CITYSCAPES_PASSWORD and run this again")


def fetch_cityscapes(raw_dir: str, retries: int) -> None:
    """Download both packages with a login (CITYSCAPES_USERNAME / CITYSCAPES_PASSWORD) unless
    they are there; without one, say which file goes where."""
    if cityscapes_present(raw_dir):
        return
    missing = [name for name in PACKAGES
               if not os.path.exists(os.path.join(raw_dir, name))]
    username = os.environ.get("CITYSCAPES_USERNAME")
    password = os.environ.get("CITYSCAPES_PASSWORD")
    if missing and username and password:
        opener = cityscapes_login(username, password, LOGIN_URL)
        for name in missing:
            download(PACKAGE_URL.format(PACKAGES[name]),
                     os.path.join(raw_dir, name), opener=opener, retries=retries)
        missing = []
    if missing:
        print(_cityscapes_instructions(raw_dir))
        raise _missing(raw_dir, missing)


DATASET = Dataset(
    spec=SPEC, title=TITLE, paper=PAPER, paper_images=(2975, 500), stream=0, scene=street_scene,
    extract=extract_cityscapes, read=read_cityscapes, fetch=fetch_cityscapes,
    archives=tuple(CITYSCAPES_ZIPS.values()), data_options=("val_sequences",),
    # the authors' BBox_cityscape.json: 376 entries (AUTHOR_CODE_FACTS.md §6)
    authors_test_boxes={"test_boxes": 376, "test_images": 500,
                        "size": "256x128, threshold 0.02"})
