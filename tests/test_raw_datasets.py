"""Raw readers on real samples (shared/data) laid out like the official archives, plus small
synthetic trees for Helen (no real samples exist), the NYU .mat layout and bad inputs."""
import os
import shutil
import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline.data.boxes import eligible_instances
from pipeline.data.raw_datasets import load_raw
from pipeline.data.sets import SIZES, get_spec
from pipeline.data.sets.facade import facade_test_masks
from pipeline.data.sets.nyu import NYU_IDS, read_nyu_names_file

from shared_data import shared_path


def _stem(i):
    return f"aachen_{i:06d}_000019"


#---------------------------------------------------------------------------------------------
# Cityscapes, real samples


@pytest.fixture(scope="module")
def city_raw(tmp_path_factory):
    """The 5 samples with photos: 0-2 under train, 3-4 under val."""
    raw = tmp_path_factory.mktemp("city_raw")
    for i in range(5):
        split = "train" if i < 3 else "val"
        for top, src_dir, suffix in (("gtFine", "train_label", "gtFine_labelIds"),
                                     ("gtFine", "train_inst", "gtFine_instanceIds"),
                                     ("leftImg8bit", "train_img", "leftImg8bit")):
            dst = raw / top / split / "aachen"
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy(shared_path("cityscapes", src_dir, f"{_stem(i)}_{suffix}.png"), dst)
    return str(raw)


@pytest.fixture(scope="module")
def city(city_raw):
    return load_raw("cityscapes", city_raw, progress=False)


def test_cityscapes_shapes_and_split(city):
    assert city["train"].names == [_stem(i) for i in range(3)]
    assert city["test"].names == [_stem(3), _stem(4)]
    for split, n in (("train", 3), ("test", 2)):
        arrays = city[split]
        assert arrays.labels.shape == (n, 128, 256) and arrays.labels.dtype == np.uint16
        assert arrays.instances.shape == (n, 128, 256) and arrays.instances.dtype == np.int32
        assert arrays.photos.shape == (n, 128, 256, 3) and arrays.photos.dtype == np.uint8
        assert arrays.labels.max() < get_spec("cityscapes").num_labels


def test_cityscapes_instances_follow_id_times_1000(city):
    for arrays in city.values():
        inst, labels = arrays.instances.astype(np.int64), arrays.labels.astype(np.int64)
        objects = inst >= 1000
        assert objects.any()
        assert (inst[objects] // 1000 == labels[objects]).all()
        assert (inst[~objects] == labels[~objects]).all()


def test_cityscapes_nearest_resize_matches_pil(city):
    full = np.array(Image.open(shared_path("cityscapes", "train_inst",
                                            f"{_stem(2)}_gtFine_instanceIds.png")))
    small = np.array(Image.fromarray(full.astype(np.int32)).resize((256, 128), Image.NEAREST))
    assert (city["train"].instances[2] == small).all()


def test_cityscapes_boxes_equal_hand_computed(city):
    spec = get_spec("cityscapes")
    inst = city["train"].instances[2].astype(np.int64)
    expected = []
    for instance_id in np.unique(inst):
        if instance_id < 1000 or instance_id // 1000 not in spec.edit_classes:
            continue
        rows, cols = np.where(inst == instance_id)
        box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        if (box[2] - box[0]) * (box[3] - box[1]) >= 0.02 * 128 * 256:
            expected.append((int(instance_id), tuple(int(v) for v in box)))
    got = [(b.instance_id, b.box) for b in eligible_instances(inst, spec.edit_classes, 0.02,
                                                                 "tight")]
    assert expected and got == expected


def _tiny_city_tree(raw, size=(64, 32), photo_size=None, label_value=7):
    """One synthetic image per split (fast, for the bad-input cases)."""
    width, height = size
    for split in ("train", "val"):
        for top in ("gtFine", "leftImg8bit"):
            os.makedirs(os.path.join(raw, top, split, "city"), exist_ok=True)
        labels = np.full((height, width), label_value, np.uint8)
        labels[8:20, 10:30] = 26
        inst = labels.astype(np.int32)
        inst[8:20, 10:30] = 26001
        base = os.path.join(raw, "gtFine", split, "city", "city_000000_000001")
        Image.fromarray(labels).save(base + "_gtFine_labelIds.png")
        Image.fromarray(inst.astype(np.uint16)).save(base + "_gtFine_instanceIds.png")
        pw, ph = photo_size or size
        Image.fromarray(np.full((ph, pw, 3), 90, np.uint8)).save(
            os.path.join(raw, "leftImg8bit", split, "city", "city_000000_000001_leftImg8bit.png"))


def test_cityscapes_zips_are_extracted(tmp_path):
    tree, raw = tmp_path / "tree", tmp_path / "raw"
    _tiny_city_tree(str(tree))
    raw.mkdir()
    for top, zip_name in (("gtFine", "gtFine_trainvaltest.zip"),
                          ("leftImg8bit", "leftImg8bit_trainvaltest.zip")):
        with zipfile.ZipFile(raw / zip_name, "w") as archive:
            archive.writestr("README", "official archive stand-in")
            for path in sorted((tree / top).rglob("*.png")):
                archive.write(path, path.relative_to(tree).as_posix())
    data = load_raw("cityscapes", str(raw), progress=False)
    assert len(data["train"].names) == len(data["test"].names) == 1
    assert (raw / "gtFine" / "val" / "city").is_dir()
    assert data["train"].instances.max() == 26001


def test_cityscapes_missing_everything_says_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_raw("cityscapes", str(tmp_path), progress=False)
    message = str(err.value)
    for needed in ("gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip",
                   "cityscapes-dataset.com", "CITYSCAPES_USERNAME", str(tmp_path)):
        assert needed in message


def test_zip_without_gtfine_folder(tmp_path):
    with zipfile.ZipFile(tmp_path / "gtFine_trainvaltest.zip", "w") as archive:
        archive.writestr("something_else/train/a.png", b"x")
    with pytest.raises(ValueError, match="gtFine_trainvaltest.zip"):
        load_raw("cityscapes", str(tmp_path), progress=False)


def test_label_png_size_differs_from_photo(tmp_path):
    _tiny_city_tree(str(tmp_path), size=(64, 32), photo_size=(60, 32))
    with pytest.raises(ValueError, match="city_000000_000001_gtFine_labelIds.png"):
        load_raw("cityscapes", str(tmp_path), progress=False)


def test_label_value_outside_palette(tmp_path):
    _tiny_city_tree(str(tmp_path), label_value=40)
    with pytest.raises(ValueError, match=r"labelIds.png: label value 40 outside"):
        load_raw("cityscapes", str(tmp_path), progress=False)


def test_truncated_png(tmp_path):
    _tiny_city_tree(str(tmp_path))
    path = tmp_path / "gtFine" / "val" / "city" / "city_000000_000001_gtFine_instanceIds.png"
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="city_000000_000001_gtFine_instanceIds.png"):
        load_raw("cityscapes", str(tmp_path), progress=False)


#---------------------------------------------------------------------------------------------
# NYU: an HDF5 fixture with the real .mat layout


def write_nyu_mat(path, frames, names):
    """frames: (photo (H,W,3) uint8, labels (H,W), instances (H,W)) in image orientation,
    stored like MATLAB v7.3 does: reversed axes, names as references to uint16 char arrays."""
    with h5py.File(path, "w", userblock_size=512) as f:
        n = len(frames)
        height, width = frames[0][1].shape
        images = f.create_dataset("images", (n, 3, width, height), np.uint8)
        labels = f.create_dataset("labels", (n, width, height), np.uint16)
        instances = f.create_dataset("instances", (n, width, height), np.uint8)
        for i, (photo, lab, ins) in enumerate(frames):
            images[i] = photo.transpose(2, 1, 0)
            labels[i] = lab.T
            instances[i] = ins.T
        refs_group = f.create_group("#refs#")
        names_ds = f.create_dataset("names", (1, len(names)), dtype=h5py.ref_dtype)
        for i, name in enumerate(names):
            chars = refs_group.create_dataset(
                f"n{i}", data=np.array([[ord(c)] for c in name], dtype=np.uint16))
            chars.attrs["MATLAB_class"] = np.bytes_("char")
            names_ds[0, i] = chars.ref
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, test fixture, HDF5-based".ljust(116, b" "))


def nyu_frame(index, height=48, width=64, ids=None):
    """Top half wall, bottom-left floor, bottom-right two chairs; a 4x4 unlabeled corner with a
    stray instance number. Photo: red grows along x, green along y, blue = 10 * index."""
    ids = ids or NYU_IDS
    labels = np.full((height, width), ids["wall"], np.uint16)
    labels[height // 2:, :width // 2] = ids["floor"]
    labels[height // 2:, width // 2:] = ids["chair"]
    labels[:4, :4] = 0
    instances = np.zeros((height, width), np.uint8)
    instances[:height // 2] = 1
    instances[height // 2:, width // 2:3 * width // 4] = 1
    instances[height // 2:, 3 * width // 4:] = 2
    instances[:4, :4] = 3
    yy, xx = np.mgrid[:height, :width]
    photo = np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1),
                      np.full_like(xx, 10 * index)], -1).astype(np.uint8)
    return photo, labels, instances


@pytest.fixture(scope="module")
def nyu_names():
    return read_nyu_names_file(shared_path("nyu", "nyu894_to_40.txt"))


def test_nyu_layout_orientation_and_instances(tmp_path, nyu_names):
    write_nyu_mat(str(tmp_path / "nyu_depth_v2_labeled.mat"),
                  [nyu_frame(i) for i in range(6)], nyu_names)
    data = load_raw("nyu", str(tmp_path), nyu_split=(4, 2), progress=False)
    assert data["train"].names == ["nyu_0001", "nyu_0002", "nyu_0003", "nyu_0004"]
    assert data["test"].names == ["nyu_0005", "nyu_0006"]
    labels, inst, photos = data["train"].labels, data["train"].instances, data["train"].photos
    assert labels.shape == (4, 144, 192) and photos.shape == (4, 144, 192, 3)
    # 64x48 -> 192x144 is an exact x3 nearest upscale.
    assert labels[0, 0, 0] == 0 and inst[0, 0, 0] == 0            # unlabeled keeps 0
    assert labels[0, 12, 12] == NYU_IDS["wall"] and inst[0, 12, 12] == 21001
    assert (labels[0, 72:, :96] == NYU_IDS["floor"]).all() and (inst[0, 72:, :96] == 11).all()
    assert (inst[0, 72:, 96:144] == 5001).all() and (inst[0, 72:, 144:] == 5002).all()
    # Photo orientation: red along columns, green along rows.
    assert (np.diff(photos[0, 70, :, 0].astype(int)) >= 0).all()
    assert photos[0, 70, -1, 0] - photos[0, 70, 0, 0] > 200
    assert (np.diff(photos[0, :, 70, 1].astype(int)) >= 0).all()
    assert photos[0, -1, 70, 1] - photos[0, 0, 70, 1] > 200
    assert (photos[0, :, :, 0] == photos[0, :1, :, 0]).all()       # red constant down a column
    assert [int(p[0, 0, 2]) for p in data["test"].photos] == [40, 50]
    boxes = eligible_instances(inst[0], get_spec("nyu").edit_classes, 0.02, "authors")
    assert (5001, (96, 72, 144, 144)) in [(b.instance_id, b.box) for b in boxes]


def test_nyu_labels_are_mapped_by_name(tmp_path, nyu_names):
    wall, floor = NYU_IDS["wall"], NYU_IDS["floor"]
    swapped = list(nyu_names)
    swapped[wall - 1], swapped[floor - 1] = swapped[floor - 1], swapped[wall - 1]
    file_ids = dict(NYU_IDS, wall=floor, floor=wall)      # the file's own ids
    write_nyu_mat(str(tmp_path / "nyu_depth_v2_labeled.mat"),
                  [nyu_frame(i, ids=file_ids) for i in range(3)], swapped)
    data = load_raw("nyu", str(tmp_path), nyu_split=(2, 1),
                    nyu_names_file=shared_path("nyu", "nyu894_to_40.txt"),
                    progress=False)
    assert data["train"].labels[0, 12, 12] == wall
    assert data["train"].labels[0, 100, 10] == floor
    default = load_raw("nyu", str(tmp_path), nyu_split=(2, 1), progress=False)
    assert default["train"].labels[0, 12, 12] == wall   # the shipped name list is the default
    with pytest.raises(ValueError, match="'floor'"):   # without the list the order is wrong
        load_raw("nyu", str(tmp_path), nyu_split=(2, 1), nyu_names_file=None, progress=False)


def test_nyu_missing_used_class(tmp_path, nyu_names):
    names = list(nyu_names)
    names[NYU_IDS["chair"] - 1] = "armchair thing"
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    write_nyu_mat(str(path), [nyu_frame(0)], names)
    with pytest.raises(ValueError, match=r"nyu_depth_v2_labeled.mat: class 'chair'"):
        load_raw("nyu", str(tmp_path), nyu_split=(1, 0), progress=False)


def test_nyu_not_hdf5_and_truncated(tmp_path, nyu_names):
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 200)
    with pytest.raises(ValueError, match="nyu_depth_v2_labeled.mat: not a readable"):
        load_raw("nyu", str(tmp_path), nyu_split=(1, 0), progress=False)
    write_nyu_mat(str(path), [nyu_frame(i) for i in range(3)], nyu_names)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="nyu_depth_v2_labeled.mat"):
        load_raw("nyu", str(tmp_path), nyu_split=(2, 1), progress=False)


def test_nyu_missing_file_names_url(tmp_path):
    with pytest.raises(FileNotFoundError, match="horatio.cs.nyu.edu"):
        load_raw("nyu", str(tmp_path), progress=False)


def test_nyu_streams_frames(tmp_path, nyu_names):
    """40 full-size frames (~74 MB in the file): Python-side peak stays a few frames."""
    frame = nyu_frame(0, height=480, width=640)
    write_nyu_mat(str(tmp_path / "nyu_depth_v2_labeled.mat"), [frame] * 40, nyu_names)
    tracemalloc.start()
    try:
        load_raw("nyu", str(tmp_path), nyu_split=(30, 10), progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB: frames are not streamed"


#---------------------------------------------------------------------------------------------
# Helen: a synthetic helenstar_release tree


def _helen_tree(raw, counts=(5, 3), bad_label=None):
    rng = np.random.RandomState(0)
    names = []
    for folder, count in zip(("train", "test"), counts):
        os.makedirs(os.path.join(raw, "helenstar_release", folder), exist_ok=True)
        for k in range(count):
            name = f"{1000 + 7 * k + (100 if folder == 'test' else 0)}_{k % 2 + 1}"
            width, height = 80 + 8 * k, 60 + 4 * k
            labels = np.zeros((height, width), np.uint8)
            labels[10:-10, 15:-15] = 1                        # skin
            labels[20:26, 25:33] = 4                          # left eye
            labels[20:26, -33:-25] = 5                        # right eye
            labels[:6, :] = 10                                # hair
            if bad_label is not None and k == 0 and folder == "train":
                labels[0, 0] = bad_label
            photo = rng.randint(60, 256, (height, width, 3)).astype(np.uint8)
            base = os.path.join(raw, "helenstar_release", folder, name)
            Image.fromarray(photo).save(base + "_image.jpg", quality=95)
            Image.fromarray(labels).save(base + "_label.png")
            Image.fromarray(photo).save(base + "_viz.jpg")
            names.append(name)
    return names


def test_helen_split_masking_and_components(tmp_path):
    names = _helen_tree(str(tmp_path))
    data = load_raw("helen", str(tmp_path), progress=False)
    # the release's own folders are the splits (5 train / 3 test here), each sorted by name
    assert data["train"].names == sorted(names[:5]) and data["test"].names == sorted(names[5:])
    for arrays in data.values():
        assert arrays.photos.shape[1:] == (256, 256, 3)
        background = arrays.labels == 0
        assert background.any()
        assert (arrays.photos[background] == 0).all()
        assert (arrays.photos[~background].max(axis=-1) > 0).all()
        for i in range(len(arrays.names)):
            ids = set(np.unique(arrays.instances[i]).tolist())
            assert {4001, 5001, 1, 10, 0} <= ids          # eyes are instances, skin/hair not


def test_helen_empty_split_folder_is_named(tmp_path):
    _helen_tree(str(tmp_path), counts=(2, 0))
    with pytest.raises(ValueError, match=r"helenstar_release/test: no \*_image.jpg files"):
        load_raw("helen", str(tmp_path), progress=False)


def test_helen_prepared_with_the_authors_rule_has_one_box_per_part(tmp_path):
    """Eyes split into two fragments: the authors' rule (one instance per class, label*1000)
    gives one box over both fragments, the tight rule one box per 8-connected fragment."""
    from pipeline.data.preparation import prepare_dataset
    _helen_tree(str(tmp_path / "raw"), counts=(2, 1))
    for name in os.listdir(tmp_path / "raw" / "helenstar_release" / "train"):
        if name.endswith("_label.png"):   # cut the left eye (rows 20-25, cols 25-32) in two
            path = tmp_path / "raw" / "helenstar_release" / "train" / name
            labels = np.array(Image.open(path))
            labels[20:26, 28:30] = 1
            Image.fromarray(labels).save(path)
    splits = load_raw("helen", str(tmp_path / "raw"), progress=False)
    boxes = {}
    for rule in ("authors", "tight"):
        out = tmp_path / rule
        stats = prepare_dataset("helen", splits, str(out), width=256, height=256,
                                threshold=0.0003, box_rule=rule, source="real")
        assert stats["box_rule"] == rule
        with open(out / "boxes.csv") as f:
            boxes[rule] = [line.split(",") for line in f.read().splitlines()[1:]]
    left_eye = {rule: [row for row in rows if row[0] == "train" and row[2] == "4"]
                for rule, rows in boxes.items()}
    assert len(left_eye["authors"]) == 2            # one per training image
    assert len(left_eye["tight"]) == 4              # two fragments per training image
    # the authors' box spans both fragments of an image
    image = left_eye["authors"][0][1]
    parts = [row for row in left_eye["tight"] if row[1] == image]
    assert int(left_eye["authors"][0][3]) == min(int(r[3]) for r in parts)
    assert int(left_eye["authors"][0][5]) == max(int(r[5]) for r in parts)


def test_helen_zip_and_7z(tmp_path):
    tree, raw = tmp_path / "tree", tmp_path / "raw"
    _helen_tree(str(tree), counts=(2, 1))
    raw.mkdir()
    (raw / "helenstar_release.7z").write_bytes(b"7z\xbc\xaf\x27\x1c")
    with pytest.raises(FileNotFoundError, match="7z x helenstar_release.7z"):
        load_raw("helen", str(raw), progress=False)
    with zipfile.ZipFile(raw / "helenstar_release.zip", "w") as archive:
        for path in sorted((tree / "helenstar_release").rglob("*")):
            archive.write(path, path.relative_to(tree).as_posix())
    data = load_raw("helen", str(raw), progress=False)
    assert len(data["train"].names) == 2 and len(data["test"].names) == 1


def test_helen_label_outside_palette(tmp_path):
    _helen_tree(str(tmp_path), counts=(2, 1), bad_label=11)
    with pytest.raises(ValueError, match=r"_label.png: label value 11 outside the palette"):
        load_raw("helen", str(tmp_path), progress=False)


#---------------------------------------------------------------------------------------------
# CMP Facade, real samples


def _facade_tree(raw):
    """cmp_b0001..3 as base, cmp_b0004 renamed cmp_x0001 as extended."""
    for part in ("base", "extended"):
        os.makedirs(os.path.join(raw, "facade", part), exist_ok=True)
    for i in range(1, 5):
        target = (os.path.join(raw, "facade", "base", f"cmp_b000{i}") if i < 4 else
                  os.path.join(raw, "facade", "extended", "cmp_x0001"))
        for ext in ("jpg", "png"):
            shutil.copy(shared_path("facade", f"cmp_b000{i}.{ext}"), f"{target}.{ext}")


def test_facade_split_and_palette_indices(tmp_path):
    _facade_tree(str(tmp_path))
    data = load_raw("facade", str(tmp_path), facade_test=1, progress=False)
    assert data["train"].names == ["cmp_b0001", "cmp_b0002", "cmp_x0001"]
    assert data["test"].names == ["cmp_b0003"]
    assert data["train"].labels.shape == (3, 242, 248)
    indices = np.array(Image.open(shared_path("facade", "cmp_b0003.png")))
    expected = np.array(Image.fromarray(indices.astype(np.int32)).resize((248, 242),
                                                                       Image.NEAREST))
    assert (data["test"].labels[0] == expected).all()
    assert 1 <= data["train"].labels.min() and data["train"].labels.max() <= 12
    assert (data["train"].instances == data["train"].labels).all()   # no edit classes


def test_facade_zips_are_extracted(tmp_path):
    tree, raw = tmp_path / "tree", tmp_path / "raw"
    _facade_tree(str(tree))
    (raw / "facade").mkdir(parents=True)
    for part, zip_name in (("base", "CMP_facade_DB_base.zip"),
                           ("extended", "CMP_facade_DB_extended.zip")):
        with zipfile.ZipFile(raw / "facade" / zip_name, "w") as archive:
            for path in sorted((tree / "facade" / part).iterdir()):
                archive.write(path, f"{part}/{path.name}")
            archive.writestr("readme.txt", "x")
    data = load_raw("facade", str(raw), facade_test=1, progress=False)
    assert data["test"].names == ["cmp_b0003"] and len(data["train"].names) == 3


def test_facade_test_masks_deterministic_and_in_range(tmp_path):
    _facade_tree(str(tmp_path))
    test = load_raw("facade", str(tmp_path), facade_test=2, progress=False)["test"]
    masks = facade_test_masks(test, repeats=20, seed=679, hole=(0.25, 0.5))
    assert len(masks) == 2 * 20
    width, height = SIZES["facade"]
    for name, repeat, x1, y1, x2, y2 in masks:
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert round(0.25 * width) <= x2 - x1 <= round(0.5 * width)
        assert round(0.25 * height) <= y2 - y1 <= round(0.5 * height)
    assert masks == facade_test_masks(test, repeats=20, seed=679, hole=(0.25, 0.5))
    # Independent of listing order: reversing the images gives each image the same holes.
    reversed_test = type(test)(names=test.names[::-1], labels=test.labels[::-1],
                               instances=test.instances[::-1], photos=test.photos[::-1])
    assert sorted(facade_test_masks(reversed_test, hole=(0.25, 0.5))) == sorted(masks)
    per_image = {}
    for m in masks:
        per_image.setdefault(m[0], []).append(m[2:])
    first, second = per_image.values()
    assert first != second
