"""The model users get (models/, released by tools/release_model.py: TwoSM+Full trained on real
Cityscapes label maps in the real-maps study): it loads, it edits the README's first
`stages.edit` example drawing an object of the target label in each box (40-98 % of the box, one
8-connected blob, not in blocks of its own pixels), it changes nothing outside the boxes, and it
says where it came from, what it was trained on and how it scores on real maps."""
import os
import re
import shlex

import numpy as np
import pytest
import torch

from pipeline.evaluation.diagnostics import largest_blob_share
from pipeline.apps.editing import Edit, load_editor
from pipeline.apps.editing_maps import read_label_map
from pipeline.apps.real_maps import blocky_mask

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(REPO, "models", "twosm-full-cityscapes", "seed0")


def readme_first_edit_example():
    """(model, map, [(box, label)]) of the README's first `python -m stages.edit` command."""
    text = open(os.path.join(REPO, "README.md")).read()
    command = re.search(r"^python -m stages\.edit (.*?)(?<!\\)$", text.replace("\\\n", " "),
                        re.MULTILINE).group(1)
    words = shlex.split(command)
    edits = [(tuple(int(v) for v in words[i + 1].split(",")), words[i + 2])
             for i, word in enumerate(words) if word == "--edit"]
    return words[0], words[1], edits


@pytest.fixture(scope="module")
def example():
    model, map_path, edits = readme_first_edit_example()
    editor = load_editor(os.path.join(REPO, model), translator="none")
    labels = read_label_map(os.path.join(REPO, map_path), editor)
    result = editor.apply(labels, [Edit(box, label) for box, label in edits])
    return editor, labels, edits, result


def test_readme_first_example_uses_the_released_model():
    model, map_path, edits = readme_first_edit_example()
    assert os.path.abspath(os.path.join(REPO, model)) == MODEL
    assert os.path.isfile(os.path.join(REPO, map_path)) and edits


def test_released_model_changes_only_the_boxes(example):
    _, labels, edits, result = example
    outside = np.ones(labels.shape, dtype=bool)
    for (x1, y1, x2, y2), _ in edits:
        outside[y1:y2, x1:x2] = False
    assert np.array_equal(result.labels[outside], labels[outside])
    assert (result.labels != labels).any()


def test_released_model_draws_one_object_of_the_target_label_per_box(example):
    editor, _, edits, result = example
    for box, name in edits:
        label = editor.label_names.index(name)
        x1, y1, x2, y2 = box
        share = np.mean(result.labels[y1:y2, x1:x2] == label)
        assert 0.40 <= share <= 0.98, (name, box, share)
        assert largest_blob_share(result.labels, box, label) == 1.0, (name, box)


def test_released_model_draws_at_the_maps_resolution(example):
    """The README's map is 2x the model's 256x128: the object's outline is not made of 2x2
    blocks of the model's pixels (let alone 4x4 blocks of a 64x32 model)."""
    editor, labels, edits, result = example
    assert labels.shape[1] > editor.width
    for box, name in edits:
        mask = result.labels == editor.label_names.index(name)
        assert not blocky_mask(mask, box, block=2), (name, box)


def test_released_model_is_small_fp16_and_says_where_it_came_from():
    path = os.path.join(MODEL, "generator.pt")
    assert os.path.getsize(path) <= 10 * 1024 * 1024
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert {v.dtype for v in state["generator"].values() if v.is_floating_point()} == \
        {torch.float16}
    release = state["release"]
    assert release["row"] == "twosm-full-cityscapes" and release["steps"] >= 2000
    assert release["size"] == [256, 128]
    assert "pseudo-labelled Cityscapes" in release["training_data"]
    assert "Cityscapes" in release["training_data"] and "terms" in release["training_data"]
    scores = release["real_maps"]["scores"]
    video = next(v for k, v in scores.items() if "video" in k)
    fill = video["minus_fill-box"]["by_sequence"]
    assert fill["low"] <= fill["mean"] <= fill["high"]
    assert set(release["real_maps"]["setup"]["val_sequences"]).isdisjoint(
        release["trained_on_sequences"])
