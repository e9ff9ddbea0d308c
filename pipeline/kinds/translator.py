"""The downstream translator G_I of a dataset (colour map -> photo, the pix2pixHD objective
L_B): not a table row, but trained by the same trainer to score every row's FID. One per
dataset, trained once with train.seed: artifacts/models/translator-<dataset>."""
from __future__ import annotations

import os

from pipeline.training import trainer
from pipeline.config.loading import to_dict
from pipeline.config.sections import Params
from pipeline.data.datasets import read_split
from pipeline.data.sets import get_spec
from pipeline.data.inputs import TranslationTask
from pipeline.kinds.base import LIVE_ROOT, RowKind
from pipeline.kinds.parts import build_generator, build_losses, build_vgg, global_generator
from pipeline.training.runs import Run, files_md5, train_run


def translator_name(dataset: str) -> str:
    return f"translator-{dataset}"


class TranslatorKind(RowKind):
    name = "translator"

    def run(self, params: Params, name: str, data_dir: str, seed: int) -> Run:
        """G_I of dataset `name` on its training maps and photos."""
        spec = get_spec(name)
        t = params.train
        split = read_split(os.path.join(data_dir, "train.h5"))
        task = TranslationTask(split, spec, batch_size=t.batch_size, flip=t.flip, seed=seed)
        generator = build_generator(3, params)
        losses = build_losses("pix2pixhd", 3, params, None, build_vgg(params))
        extra = {"dataset": name, "loss": "pix2pixhd", "in_channels": 3,
                 "profile": {"name": params.profile, **to_dict(params.row_profile())},
                 "train_images": len(split.names), "data_md5": files_md5(data_dir, ("train.h5",))}
        return Run(name=translator_name(name), kind=self.name, generator=generator,
                   losses=losses, task=task, epochs=params.translator.epochs,
                   size=split.labels.shape[:0:-1], extra=extra,
                   optimiser=(t.lr, (t.beta1, t.beta2)),
                   model_info={"model": to_dict(params.model), "twosm": None})

    def network(self, state: dict):
        return global_generator(state)

    def train(self, params: Params, name: str, seed: int | None = None, *,
              data_dir: str | None = None, out_dir: str | None = None,
              live_dir: str | None = None, progress: bool = True) -> dict:
        """Train G_I of dataset `name` (seed: train.seed) into
        artifacts/models/translator-<dataset> (default out_dir)."""
        if name not in params.datasets:
            raise ValueError(f"datasets.{name}: not a dataset of the params")
        t = params.train
        seed = t.seed if seed is None else seed
        trainer.make_deterministic(seed, t.cpu_threads, t.deterministic)
        folder = translator_name(name)
        run = self.run(params, name, data_dir or os.path.join(self.data_root, name), seed)
        return train_run(params, run, out_dir or os.path.join(self.model_root, folder),
                         live_dir or os.path.join(LIVE_ROOT, folder), progress)
