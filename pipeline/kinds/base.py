"""What every row kind knows (pipeline.kinds): how to build one training run of a row
(`Run`), where its data and models live, how to rebuild the network of its model file, and
which test set scores it. One subclass per kind, one file each."""
from __future__ import annotations

import os

import torch.nn as nn

from pipeline.training import trainer
from pipeline.config.loading import seed_dir
from pipeline.config.sections import ROW_SECTIONS, Params
from pipeline.training.runs import Run, train_run

LIVE_ROOT = "reports/train"   # dvclive logs and resources.json of every run


class RowKind:
    """A kind of table row. `name` is the `meta["kind"]` of its model files; `sections` the
    params sections that list its rows (pipeline.config.sections.ROW_SECTIONS: each one's row
    schema, losses and training stage); `table` the evaluation that scores them; `edits_maps`:
    its models redraw a box of a label map (the editor loads them: pipeline.apps.editing)."""
    name = ""
    sections: tuple = ()
    table = ""        # the evaluate stage (stages.evaluate --table) that scores its rows
    edits_maps = False
    data_root = "artifacts/data"
    model_root = "artifacts/models"

    def __init__(self, data_root: str | None = None, model_root: str | None = None):
        """The kind with its prepared data and its models elsewhere than the pipeline's
        folders (default: the class's data_root / model_root)."""
        if data_root is not None:
            self.data_root = data_root
        if model_root is not None:
            self.model_root = model_root

    @property
    def losses(self) -> tuple:
        """The losses (pipeline.config.losses.LOSSES names) its rows may name."""
        return tuple(dict.fromkeys(loss for section in self.sections
                                   for loss in ROW_SECTIONS[section].losses))

    def section_of(self, params: Params, name: str) -> str:
        """The params section that lists row `name`."""
        return next(section for section in self.sections if name in getattr(params, section))

    def stage(self, params: Params, name: str) -> str:
        """The DVC stage that trains row `name` (dvc repro <stage>@<row>-seed<k>)."""
        return ROW_SECTIONS[self.section_of(params, name)].stage

    def rows(self, params: Params) -> dict:
        """Row name -> params entry of every row of this kind."""
        return {name: row for section in self.sections
                for name, row in getattr(params, section).items()}

    def dataset(self, params: Params, name: str) -> str:
        return self.rows(params)[name].dataset

    def data_dir(self, params: Params, name: str) -> str:
        return os.path.join(self.data_root, self.dataset(params, name))

    def model_dir(self, name: str, seed: int) -> str:
        return seed_dir(self.model_root, name, seed)

    def run(self, params: Params, name: str, data_dir: str, seed: int) -> Run:
        """Everything one training run of row `name` with seed `seed` needs (networks built
        after the trainer's seeding)."""
        raise NotImplementedError

    def network(self, state: dict) -> nn.Module:
        """The (untrained) network a model file of this kind holds, from its saved keys."""
        raise NotImplementedError

    def score(self, test, generator) -> tuple:
        """(per-item scores, outputs) of a trained generator on a test set of this kind's
        (pipeline.evaluation.evaluation: BoxTestSet.run, InpaintingTestSet.run)."""
        raise NotImplementedError

    def test_datasets(self, params: Params, row_datasets: list) -> list:
        """The datasets whose test sets its table scores, given the datasets of the rows."""
        raise NotImplementedError

    def training_settings(self, params: Params, row) -> dict:
        """The resolved settings a row trains with besides the row itself (stages.train
        --dry-run prints them)."""
        raise NotImplementedError

    def train(self, params: Params, name: str, seed: int | None = None, *,
              data_dir: str | None = None, out_dir: str | None = None,
              live_dir: str | None = None, progress: bool = True) -> dict:
        """Train row `name` with training seed `seed` (default: the first of params.seeds)
        into out_dir (default: its model folder) and live_dir (its dvclive folder); returns
        the run's summary."""
        seed = params.seeds[0] if seed is None else seed
        t = params.train
        trainer.make_deterministic(seed, t.cpu_threads, t.deterministic)
        run = self.run(params, name, data_dir or self.data_dir(params, name), seed)
        return train_run(params, run, out_dir or self.model_dir(name, seed),
                         live_dir or seed_dir(LIVE_ROOT, name, seed), progress)
