"""pipeline.data.datasets (palettes, colour <-> label, NYU ids, split files) and pipeline.data.inputs
(instance edges, the edit inputs Su / M, the generator condition, flips, EditTask batches)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.data.datasets import (SplitArrays, colour_to_labels, labels_to_colour, read_split,
                                    voc_colormap, write_split)
from pipeline.data.sets import SPECS
from pipeline.data.sets.nyu import NYU_IDS, NYU_NUM_LABELS
from pipeline.data.inputs import (EditBox, EditTask, condition_tensor, edit_inputs, flip_box,
                             instance_edges)
from shared_data import shared_path


# ---------------------------------------------------------------------------------------------
# Palettes


@pytest.mark.parametrize("name", sorted(SPECS))
def test_palette_has_one_distinct_colour_per_label(name):
    spec = SPECS[name]
    assert spec.palette.shape == (spec.num_labels, 3)
    assert spec.palette.dtype == np.uint8
    assert len({tuple(c) for c in spec.palette.tolist()}) == spec.num_labels


@pytest.mark.parametrize("name", sorted(SPECS))
def test_edit_classes_are_labels_of_the_dataset(name):
    spec = SPECS[name]
    assert all(0 < c < spec.num_labels for c in spec.edit_classes)


def test_voc_colormap_first_colours():
    assert voc_colormap(9).tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0],
                                        [0, 0, 128], [128, 0, 128], [0, 128, 128],
                                        [128, 128, 128], [64, 0, 0]]
    assert voc_colormap(16)[15].tolist() == [192, 128, 128]     # VOC "person"


def test_cityscapes_official_colours():
    palette = SPECS["cityscapes"].palette
    assert palette[7].tolist() == [128, 64, 128]     # road
    assert palette[24].tolist() == [220, 20, 60]     # person
    assert palette[26].tolist() == [0, 0, 142]       # car


# ---------------------------------------------------------------------------------------------
# Colour <-> label


@pytest.mark.parametrize("name", ["cityscapes", "helen", "nyu"])
def test_colour_round_trip(name):
    spec = SPECS[name]
    labels = np.random.default_rng(0).integers(0, spec.num_labels, size=(12, 20))
    colour = labels_to_colour(labels, spec.palette)
    assert colour.shape == (12, 20, 3)
    np.testing.assert_array_equal(colour_to_labels(colour, spec.palette), labels)


def test_colour_round_trip_across_chunks():
    palette = SPECS["cityscapes"].palette
    labels = np.random.default_rng(1).integers(0, len(palette), size=(7, 9))
    np.testing.assert_array_equal(
        colour_to_labels(labels_to_colour(labels, palette), palette, chunk=5), labels)


def test_colour_to_labels_nearest_colour_by_hand():
    palette = SPECS["cityscapes"].palette
    # car (0,0,142): (3,2,140) is 4.1 away from it. (0,0,120) is 10 from trailer (0,0,110),
    # 22 from car, 30 from caravan (0,0,90).
    colours = np.array([[[3, 2, 140], [0, 0, 120], [126, 66, 129]]], dtype=np.uint8)
    assert colour_to_labels(colours, palette).tolist() == [[26, 30, 7]]


@pytest.mark.parametrize("name", ["cityscapes", "helen", "nyu"])
def test_colour_to_labels_tolerates_small_noise(name):
    # every palette's closest pair is >= 16 apart (RGB), so a shift of at most 4 per channel
    # (<= 6.93 in distance) keeps each colour nearest to its own label
    spec = SPECS[name]
    rng = np.random.default_rng(2)
    labels = rng.integers(0, spec.num_labels, size=(10, 10))
    noisy = labels_to_colour(labels, spec.palette).astype(int) + rng.integers(-4, 5, (10, 10, 3))
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(colour_to_labels(noisy, spec.palette), labels)


def test_labels_outside_the_palette_raise():
    with pytest.raises(ValueError):
        labels_to_colour(np.array([[0, 11]]), SPECS["helen"].palette)


# ---------------------------------------------------------------------------------------------
# NYU ids against the shared dump of the .mat class names


def _nyu_names():
    names = {}
    for line in Path(shared_path("nyu", "nyu894_to_40.txt")).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, name, _ = line.split("\t")
        names[int(label)] = name
    return names


def test_nyu_ids_match_the_class_names():
    names = _nyu_names()
    assert {name: names[label] for name, label in NYU_IDS.items()} == \
        {name: name for name in NYU_IDS}


def test_nyu_label_count():
    names = _nyu_names()
    assert sorted(names) == list(range(1, 895))
    assert NYU_NUM_LABELS == 895 == SPECS["nyu"].num_labels


# ---------------------------------------------------------------------------------------------
# Prepared split files


def test_split_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    split = SplitArrays(names=["a", "b"],
                        labels=rng.integers(0, 35, (2, 4, 8)).astype(np.uint16),
                        instances=rng.integers(0, 30000, (2, 4, 8)).astype(np.int32),
                        photos=rng.integers(0, 256, (2, 4, 8, 3)).astype(np.uint8))
    path = str(tmp_path / "train.h5")
    write_split(path, split)
    back = read_split(path)
    assert back.names == ["a", "b"]
    np.testing.assert_array_equal(back.labels, split.labels)
    np.testing.assert_array_equal(back.instances, split.instances)
    np.testing.assert_array_equal(back.photos, split.photos)


# ---------------------------------------------------------------------------------------------
# Generator inputs (pipeline.data.inputs)


def test_instance_edges_by_hand():
    instances = np.array([[1, 1, 2, 2],
                          [1, 1, 2, 2],
                          [1, 1, 1, 1],
                          [1, 1, 1, 1]])
    expected = np.array([[0, 1, 1, 0],
                         [0, 1, 1, 1],
                         [0, 0, 1, 1],
                         [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(instance_edges(instances), expected)


def test_instance_edges_of_a_uniform_map_are_empty():
    assert instance_edges(np.full((3, 5), 7)).sum() == 0


def test_edit_inputs_paint_the_box():
    labels = np.arange(20).reshape(4, 5)
    instances = labels * 10
    incomplete, edited, mask = edit_inputs(labels, instances, EditBox("x", 26, (1, 1, 3, 3)))
    np.testing.assert_array_equal(incomplete, [[0, 1, 2, 3, 4],
                                               [5, 26, 26, 8, 9],
                                               [10, 26, 26, 13, 14],
                                               [15, 16, 17, 18, 19]])
    np.testing.assert_array_equal(edited[1:3, 1:3], np.full((2, 2), 26999))
    assert edited[0, 0] == 0 and edited[3, 4] == 190
    np.testing.assert_array_equal(mask, [[0, 0, 0, 0, 0],
                                         [0, 1, 1, 0, 0],
                                         [0, 1, 1, 0, 0],
                                         [0, 0, 0, 0, 0]])
    assert labels[1, 1] == 6 and instances[1, 1] == 60     # inputs untouched


def test_condition_tensor_channels():
    incomplete = torch.tensor([[[0, 2, 1], [3, 3, 0]]])                # (1, 2, 3), 4 labels
    edges = torch.tensor([[[0., 1., 0.], [1., 0., 0.]]])
    mask = torch.tensor([[[0., 1., 1.], [0., 0., 0.]]])
    condition = condition_tensor(incomplete, edges, mask, num_labels=4)
    assert condition.shape == (1, 4 + 2, 2, 3)
    assert torch.equal(condition[:, :4].sum(1), torch.ones(1, 2, 3))
    assert torch.equal(condition[0, :4].argmax(0), incomplete[0])
    assert torch.equal(condition[0, 4], edges[0])
    assert torch.equal(condition[0, 5], mask[0])


def test_flip_box():
    assert flip_box((1, 2, 5, 6), 10) == (5, 2, 9, 6)
    assert flip_box(flip_box((1, 2, 5, 6), 10), 10) == (1, 2, 5, 6)


def test_flip_box_matches_a_mirrored_mask():
    mask = np.zeros((4, 10))
    mask[2:4, 1:5] = 1                                      # box (1, 2, 5, 4)
    expected = np.zeros((4, 10))
    x1, y1, x2, y2 = flip_box((1, 2, 5, 4), 10)
    expected[y1:y2, x1:x2] = 1
    np.testing.assert_array_equal(mask[:, ::-1], expected)


def _edit_task():
    labels = np.full((2, 8, 16), 7, dtype=np.int64)          # road
    labels[:, 0:2, :] = 23                                   # sky on top
    instances = labels.copy()
    labels[0, 3:6, 1:4], instances[0, 3:6, 1:4] = 26, 26001  # a car on the left
    labels[1, 4:7, 10:15], instances[1, 4:7, 10:15] = 24, 24001
    split = SplitArrays(names=["a", "b"], labels=labels, instances=instances,
                        photos=np.zeros((2, 8, 16, 3), dtype=np.uint8))
    boxes = {"a": [EditBox("a", 26, (1, 3, 4, 6))], "b": [EditBox("b", 24, (10, 4, 15, 7))]}
    return split, EditTask(split, SPECS["cityscapes"], boxes, batch_size=1, flip=True, seed=0)


def test_edit_task_batches_are_deterministic():
    _, task = _edit_task()
    first = [b.condition for b in task.epoch(3, "cpu")]
    second = [b.condition for b in task.epoch(3, "cpu")]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_edit_task_batch_agrees_with_its_box():
    split, task = _edit_task()
    palette = SPECS["cityscapes"].palette
    orientations = set()
    for epoch in range(6):
        for batch in task.epoch(epoch, "cpu"):
            x1, y1, x2, y2 = batch.boxes[0]
            inside = np.zeros((8, 16), dtype=bool)
            inside[y1:y2, x1:x2] = True
            # the mask (fusion M and the last condition channel) is 1 exactly in the box
            np.testing.assert_array_equal(batch.mask[0, 0].numpy(), inside)
            np.testing.assert_array_equal(batch.condition[0, 36].numpy(), inside)
            su = batch.condition[0, :35].argmax(0).numpy()
            label = int(su[y1, x1])
            assert label in (26, 24) and (su[inside] == label).all()
            labels = split.labels[0 if label == 26 else 1]
            flipped = not np.array_equal(su[~inside], labels[~inside])
            if flipped:
                labels = labels[:, ::-1]
            orientations.add(flipped)
            # Su outside the box, the target and the box all come from one orientation
            np.testing.assert_array_equal(su[~inside], labels[~inside])
            colour = torch.from_numpy(palette[labels]).permute(2, 0, 1).float() / 127.5 - 1
            assert torch.allclose(batch.target[0], colour)
            assert set(labels[inside].tolist()) == {label}
    assert orientations == {False, True}
