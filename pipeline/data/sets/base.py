"""What every dataset of the registry declares (``Dataset``), and a public file it downloads
(``Source``). A dataset's own module (pipeline.data.sets.<name>) fills one ``Dataset`` in: its
label space, the paper's settings, its synthetic scene, how its raw folder is extracted, read and
fetched."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pipeline.data.datasets import DatasetSpec


@dataclass(frozen=True)
class Source:
    """One downloadable raw file: where it comes from and where it goes under the raw folder."""
    url: str
    path: str                   # relative to the raw folder
    size: int | None = None     # bytes, None where not known offline
    sha256: str | None = None   # None where not known offline
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    """One dataset: all the pipeline knows of it. ``DATASETS`` (pipeline.data.sets) holds one
    per name; readers, the synthetic generator, the download and prepare steps and params
    validation ask it instead of testing its name."""
    spec: DatasetSpec           # the label space (ids, palette, edit classes)
    title: str                  # its name in messages ("CMP Facade")
    paper: dict                 # the paper's prepared size and thresholds (§4): width, height,
                                # size_threshold (box_list_threshold where a row trains lower)
    stream: int                 # the synthetic generator's fixed stream (never reused: a new
                                # dataset must not shift the others' images)
    scene: Callable             # (height, width, rng) -> (labels, instances, photo): synthetic
    extract: Callable           # (raw_dir, dest_dir) -> the folder to read it from
    read: Callable              # (raw_dir, *, progress, workers, **options) -> {split: arrays}
    fetch: Callable             # (raw_dir, retries) -> None: download, or say what goes where
    archives: tuple = ()        # zip files under the raw folder that must open (download)
    sources: tuple = ()         # public downloads (Source)
    data_options: tuple = ()    # params.data keys its reader takes (e.g. val_sequences)
    authors_test_boxes: dict | None = None  # the authors' test-box count (their box lists)
    test_masks: Callable | None = None      # the fixed test holes of an inpainting dataset
    paper_images: tuple | None = None       # the paper's (train, test) image counts

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def paper_split(self) -> str:
        """The paper's train / test counts as the report shows them ("?" where not stated)."""
        return " / ".join(map(str, self.paper_images)) if self.paper_images else "?"

    @property
    def size(self) -> tuple:
        """The paper's prepared size (W, H): what the raw readers produce."""
        return self.paper["width"], self.paper["height"]
