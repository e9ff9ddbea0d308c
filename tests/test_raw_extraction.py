"""The raw-data folder that `data.dvc` tracks is only ever read: archives are extracted into a
separate folder (the prepare stage's output artifacts/raw/<dataset>), once per archive version;
folders the user extracted in the raw folder are read in place."""
import os
import sys
import time
import zipfile

import numpy as np
from PIL import Image

from pipeline.data.raw_datasets import load_raw
from tiny_project import REPO

ZIPS = {"gtFine": "gtFine_trainvaltest.zip", "leftImg8bit": "leftImg8bit_trainvaltest.zip"}


def city_tree(root, car_value=26):
    """One 64x32 image per split in the official Cityscapes layout."""
    for split in ("train", "val"):
        for top in ZIPS:
            os.makedirs(os.path.join(root, top, split, "city"), exist_ok=True)
        labels = np.full((32, 64), 7, np.uint8)
        labels[8:20, 10:30] = car_value
        instances = labels.astype(np.uint16)
        instances[8:20, 10:30] = car_value * 1000 + 1
        base = os.path.join(root, "gtFine", split, "city", "city_000000_000001")
        Image.fromarray(labels).save(base + "_gtFine_labelIds.png")
        Image.fromarray(instances).save(base + "_gtFine_instanceIds.png")
        Image.fromarray(np.full((32, 64, 3), 90, np.uint8)).save(os.path.join(
            root, "leftImg8bit", split, "city", "city_000000_000001_leftImg8bit.png"))


def zip_tree(tree, raw):
    os.makedirs(raw, exist_ok=True)
    for top, name in ZIPS.items():
        with zipfile.ZipFile(os.path.join(raw, name), "w") as archive:
            for folder, _dirs, files in sorted(os.walk(os.path.join(tree, top))):
                for file in sorted(files):
                    path = os.path.join(folder, file)
                    archive.write(path, os.path.relpath(path, tree))


def listing(folder):
    return {os.path.relpath(os.path.join(root, name), folder):
            os.stat(os.path.join(root, name)).st_mtime_ns
            for root, _dirs, names in os.walk(folder) for name in names}


def test_archives_extract_outside_the_raw_folder_once(tmp_path):
    tree, raw, extracted = str(tmp_path / "tree"), str(tmp_path / "raw"), str(tmp_path / "x")
    city_tree(tree)
    zip_tree(tree, raw)
    before = listing(raw)
    data = load_raw("cityscapes", raw, progress=False, extract_dir=extracted)
    assert (data["train"].labels == 26).any()
    assert listing(raw) == before                       # data.dvc stays clean
    assert os.path.isdir(os.path.join(extracted, "gtFine", "val", "city"))
    first = listing(extracted)
    load_raw("cityscapes", raw, progress=False, extract_dir=extracted)
    assert listing(extracted) == first                  # same archives: not extracted again
    # a replaced archive (another version) is extracted again
    time.sleep(0.01)
    city_tree(tree, car_value=24)
    zip_tree(tree, raw)
    os.utime(os.path.join(raw, ZIPS["gtFine"]), (1, 1))
    data = load_raw("cityscapes", raw, progress=False, extract_dir=extracted)
    assert (data["train"].labels == 24).any() and not (data["train"].labels == 26).any()


def test_folders_extracted_by_the_user_are_read_in_place(tmp_path):
    raw, extracted = str(tmp_path / "raw"), str(tmp_path / "x")
    city_tree(raw)
    before = listing(raw)
    load_raw("cityscapes", raw, progress=False, extract_dir=extracted)
    assert listing(raw) == before and not os.path.exists(extracted)


def test_prepare_stage_leaves_the_raw_folder_untouched(tmp_path, monkeypatch):
    """The prepare stage's command line, run by its main() in this process (no second torch
    import; the stage runs as a process in test_test_boxes.py and the end-to-end test)."""
    from stages.prepare import main
    tree, raw = str(tmp_path / "tree"), str(tmp_path / "raw")
    city_tree(tree)
    zip_tree(tree, raw)
    before = listing(raw)
    out, extract = str(tmp_path / "prepared"), str(tmp_path / "extracted")
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "argv", ["stages.prepare", "cityscapes", "--raw", raw, "--out", out,
                                      "--extract", extract])
    main()
    assert listing(raw) == before
    assert os.path.isfile(os.path.join(out, "train.h5"))
    assert os.path.isfile(os.path.join(extract, "README.txt"))
    assert os.path.isdir(os.path.join(extract, "leftImg8bit", "train"))
