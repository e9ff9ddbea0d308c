"""The datasets registry (pipeline.data.sets): every dataset module is registered under its own
name, with its own reader, scene and download (a dataset missing from DATASETS, or a reader
registered under another dataset's name, fails here), its synthetic stream is fixed, and outside
the registry at most 3 library files spell a dataset's name."""
import io
import os
import re
import tokenize

import numpy as np
import pytest
import yaml

from pipeline.data import sets
from pipeline.data.sets import DATASETS, get_dataset
from pipeline.data.synthetic import generate_split

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = os.path.join(REPO, "pipeline", "data", "sets")
# The generator's fixed streams: changing one changes every synthetic image of that dataset (a
# new dataset adds its own here).
STREAMS = {"cityscapes": 0, "helen": 1, "nyu": 2, "facade": 3}


def dataset_modules() -> list:
    """The dataset modules of pipeline/data/sets/ (every .py file but base and __init__)."""
    return sorted(name[:-3] for name in os.listdir(SETS)
                  if name.endswith(".py") and name not in ("__init__.py", "base.py"))


def test_every_dataset_module_is_registered_under_its_name():
    assert sorted(DATASETS) == dataset_modules()
    for name, dataset in DATASETS.items():
        module = getattr(sets, name)
        assert module.DATASET is dataset and module.NAME == name == dataset.name


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_dataset_runs_its_own_code(name):
    """No callable of a dataset comes from another dataset's module (shared engines such as
    street_scene may serve one)."""
    dataset = get_dataset(name)
    others = {f"pipeline.data.sets.{other}" for other in DATASETS if other != name}
    for field in ("scene", "extract", "read", "fetch", "test_masks"):
        function = getattr(dataset, field)
        if function is not None:
            assert function.__module__ not in others, (name, field, function.__module__)
    for field in ("extract", "read", "fetch"):
        assert getattr(dataset, field).__module__ == f"pipeline.data.sets.{name}", (name, field)


def test_streams_are_fixed_and_distinct():
    assert {name: d.stream for name, d in DATASETS.items()} == STREAMS


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_declarations_are_consistent(name):
    dataset = get_dataset(name)
    spec = dataset.spec
    assert spec.palette.shape == (spec.num_labels, 3) and spec.palette.dtype == np.uint8
    assert len({tuple(c) for c in spec.palette}) == spec.num_labels
    assert all(0 < c < spec.num_labels for c in spec.edit_classes)
    assert dataset.size == (dataset.paper["width"], dataset.paper["height"])
    assert 0 < dataset.paper["size_threshold"] < 1
    # an inpainting dataset (test holes) has no edit classes, a segmentation one has some
    assert (dataset.test_masks is None) == bool(spec.edit_classes)
    assert all(source.path and source.url.startswith("http") for source in dataset.sources)
    split = generate_split(name, "test", 1, 24, 32, 0)
    assert split.labels.shape == (1, 24, 32) and split.labels.max() < spec.num_labels
    assert split.names == [f"{name}_test_00000"]


def test_params_name_registered_datasets():
    for file in ("params.yaml", "params_study.yaml", "params_paper.yaml"):
        with open(os.path.join(REPO, file)) as f:
            raw = yaml.safe_load(f)
        assert set(raw["datasets"]) <= set(DATASETS), file
        assert get_dataset(raw["inpainting"]["dataset"]).test_masks is not None, file


#---------------------------------------------------------------------------------------------
# Dataset names outside the registry

NAME = re.compile(r"(?<![\w-])(" + "|".join(DATASETS) + r")(?![\w-])")
MOST_FILES = 3  # issue 33: "outside the datasets registry, in at most 3 library files"


def spellings(path: str) -> list:
    """(line, token) of every place a Python file spells a dataset's name: a string literal
    holding it as a word ("nyu", f"...{q.get('nyu')}", not a row name such as
    "mexgan-cityscapes" nor a docstring), or a reference to its registry module
    (`sets.cityscapes`, `import cityscapes`). Comments aside."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    found, previous = [], (tokenize.NEWLINE, "")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING:
            docstring = previous[0] in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                        tokenize.NL)
            if not docstring and NAME.search(token.string):
                found.append((token.start[0], token.string))
        elif token.type == tokenize.NAME and token.string in DATASETS \
                and previous[1] in (".", "import"):
            found.append((token.start[0], token.string))
        if token.type != tokenize.COMMENT:
            previous = (token.type, token.string)
    return found


def spelling_files() -> dict:
    """Library file outside pipeline/data/sets/ -> its spellings of a dataset's name."""
    found = {}
    for folder, _, names in os.walk(os.path.join(REPO, "pipeline")):
        if os.path.abspath(folder).startswith(SETS):
            continue
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                if spellings(path):
                    found[os.path.relpath(path, REPO)] = spellings(path)
    return found


def test_dataset_names_are_spelled_in_few_library_files():
    found = spelling_files()
    assert len(found) <= MOST_FILES, found


def test_the_count_sees_a_spelling(tmp_path):
    path = tmp_path / "x.py"
    path.write_text('"""About nyu."""\nx = {"nyu": 5}  # helen\nfrom pipeline.data.sets import '
                    'helen\ny = "mexgan-cityscapes", "cityscapes_x", facade\n'
                    'z = f"{q.get(\'helen\')}"\n')
    assert spellings(str(path)) == [(2, '"nyu"'), (3, "helen"), (5, 'f"{q.get(\'helen\')}"')]
