"""The datasets registry: ``DATASETS``, dataset name -> ``Dataset`` (pipeline.data.sets.base),
one module per dataset (cityscapes, nyu, helen, facade), each holding all the pipeline knows of
it: its label space (``DatasetSpec``), the paper's settings, its synthetic scene, its raw
reader(s), its download sources. The raw readers (pipeline.data.raw_datasets), the synthetic
generator (pipeline.data.synthetic), the prepare step and params validation ask the registry
instead of testing a dataset's name.

Adding a dataset (ADE20K, say) means one module here, listed in ``_MODULES``, plus its params
(`datasets.<name>` in params.yaml); `tests/test_datasets_registry.py` checks what it declares.
"""
from __future__ import annotations

from pipeline.data.datasets import DatasetSpec
from pipeline.data.sets import cityscapes, facade, helen, nyu
from pipeline.data.sets.base import Dataset, Source

__all__ = ["DATASETS", "Dataset", "Source", "get_dataset", "get_spec", "SPECS", "SIZES",
           "PAPER_SETTINGS", "AUTHORS_TEST_BOXES", "STREET_DATASET", "INPAINTING_DATASET"]

_MODULES = (cityscapes, nyu, helen, facade)

DATASETS: dict = {module.DATASET.name: module.DATASET for module in _MODULES}

# Where the paper singles one dataset out: the street scenes of Table 2 (TwoSM), Fig 10 (the q
# sweep), the human evaluation and the real label maps; the inpainting of Table 3.
STREET_DATASET = cityscapes.NAME
INPAINTING_DATASET = facade.NAME


def get_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


def get_spec(name: str) -> DatasetSpec:
    return get_dataset(name).spec


# Views of the registry, by dataset name.
SPECS = {name: d.spec for name, d in DATASETS.items()}
# The paper's prepared sizes (W, H), what the raw readers produce.
SIZES = {name: d.size for name, d in DATASETS.items()}
# The paper's sizes and box size thresholds (§4); the outside-DVC prepare CLI uses these, the
# DVC stages read theirs from params.yaml.
PAPER_SETTINGS = {name: d.paper for name, d in DATASETS.items()}
# The authors' count of test images with an eligible box (AUTHOR_CODE_FACTS.md §6), to set
# beside ours on the full real test split.
AUTHORS_TEST_BOXES = {name: d.authors_test_boxes for name, d in DATASETS.items()
                      if d.authors_test_boxes}
