"""One training run of any row kind: the one trainer (pipeline.training.trainer) around what a kind
built (`Run`), and the run's files: generator.pt (with its `meta`, written last),
train_summary.json, the dvclive logs with resources.json, origin.json."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import yaml

from pipeline.training import trainer
from pipeline.atomic import write_json_atomic
from pipeline.training.checkpoints import checkpoint_paths, save_atomic
from pipeline.config.loading import to_dict
from pipeline.config.sections import Params, TrainParams
from pipeline.training.distributed import context_from_env
from pipeline.models.losses import Pix2PixHDLoss
from pipeline.models.model_files import (GENERATOR_FILE, RESOURCE_KEYS, RESOURCES_FILE, SUMMARY_FILE,
                                  code_commit, model_metadata)
from pipeline.models.networks import count_parameters

log = logging.getLogger(__name__)

# The commit a run's model was trained at (next to generator.pt, .dvcignored like the
# checkpoints): a rerun that resumes from the final checkpoint at a later commit (a `dvc exp run`
# that restarts a row whose params did not change) keeps it, so generator.pt stays bit-identical.
ORIGIN_FILE = "origin.json"

PERCEPTUAL_DROPPED = ("DROPPED: no L_perc (no vgg19-dcbb9e9d.pth found; "
                      "loss.without_vgg_weights: drop)")


@dataclass
class Run:
    """What a row kind builds for one training run (pipeline.kinds): the networks, the loss
    plug-ins and the batches, and what the run's files record.
    extra: the logged params and summary keys (`dataset` and `in_channels` always);
    optimiser: (lr, betas); config: the resolved settings a resumable checkpoint must match
    (None: the model, loss and train sections); model_info: the keys of generator.pt that
    rebuild the network (besides the weights and `in_channels`); size: (width, height)."""
    name: str
    kind: str
    generator: nn.Module
    losses: list
    task: object
    epochs: int
    size: tuple
    extra: dict
    optimiser: tuple
    model_info: dict
    config: dict | None = None
    phases: tuple = trainer.JOINT
    monitor: Callable | None = None
    no_vgg: str = "none"          # the summary's vgg_source when no plug-in has a VGG19


def origin_commit(out_dir: str, params_hash: str, resumed: bool) -> str:
    """The commit to record in a run's model file: the one ORIGIN_FILE recorded for the same
    params when this run resumed from a checkpoint, else the code's commit now (recorded)."""
    path = os.path.join(out_dir, ORIGIN_FILE)
    if resumed and os.path.exists(path):
        try:
            with open(path) as f:
                origin = json.load(f)
            if origin.get("params_hash") == params_hash and origin.get("commit"):
                return origin["commit"]
        except (OSError, ValueError, AttributeError):
            pass
    commit = code_commit()
    write_json_atomic(path, {"params_hash": params_hash, "commit": commit})
    return commit


def files_md5(directory: str, names) -> str:
    """One md5 over the named files (the training data a checkpoint was made from)."""
    digest = hashlib.md5()
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def code_digest(root: str | None = None) -> str:
    """md5 of the library's source (pipeline/**/*.py) under `root` (default: this library's own
    folder; a study's scratch copy passes its pipeline/). Part of every checkpoint's fingerprint:
    a run never resumes from a checkpoint that other code wrote, so a DVC rerun after a code
    change retrains instead of keeping a model of the old code."""
    digest = hashlib.md5()
    if root is None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for folder, subfolders, names in sorted(os.walk(root)):
        subfolders.sort()
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                with open(path, "rb") as f:
                    digest.update(f.read())
    return digest.hexdigest()


def acceleration(train: TrainParams) -> trainer.Acceleration:
    """The trainer's Acceleration from the train params of the same names."""
    return trainer.Acceleration(precision=train.precision, channels_last=train.channels_last,
                                fused_adam=train.fused_adam, compile=train.compile)


def _usable_live_dir(live_dir: str) -> None:
    """dvclive's resume reads metrics.json and params.yaml of live_dir: a file a killed run left
    half-written is removed (it is rewritten at the next logged step)."""
    readers = {"metrics.json": json.load, "params.yaml": yaml.safe_load}
    for name, read in readers.items():
        path = os.path.join(live_dir, name)
        if os.path.exists(path):
            try:
                with open(path) as f:
                    read(f)
            except (ValueError, yaml.YAMLError, UnicodeDecodeError):
                log.warning("removing damaged dvclive file %s", path)
                os.remove(path)


def _vgg_source(run: Run):
    """(vgg_pretrained, vgg_source) of the summary: the perceptual loss's VGG19, or why none."""
    first = run.losses[0]
    vgg = getattr(first, "vgg", None)  # TwoSM's and GL's objectives have no VGG
    if vgg is not None:
        return int(vgg.pretrained), vgg.source
    if isinstance(first, Pix2PixHDLoss):
        return -1, "none (λ3 = 0)" if first.lambda_perc == 0 else PERCEPTUAL_DROPPED
    return -1, run.no_vgg


def train_run(params: Params, run: Run, out_dir: str, live_dir: str,
              progress: bool = True) -> dict:
    """Train `run` with the one trainer (resuming from a checkpoint of the same fingerprint)
    and write its outputs, generator.pt last; returns the run's summary."""
    device = trainer.pick_device(params.train.device)
    ranks = context_from_env(device.type)  # torchrun: several ranks, rank 0 writes
    if ranks.enabled and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    t = params.train
    os.makedirs(out_dir, exist_ok=True)
    # The final model of an earlier run goes now: a run that fails leaves no generator.pt that
    # a later stage could take for this one's (generator.pt is written last, when complete).
    for stale in (os.path.join(out_dir, GENERATOR_FILE), os.path.join(out_dir, SUMMARY_FILE),
                  os.path.join(live_dir, RESOURCES_FILE)):
        if ranks.is_main and os.path.exists(stale):
            os.remove(stale)
    config = run.config
    if config is None:
        # checkpoint_every (where checkpoints are written) and data_workers (who builds the
        # same batches) never change the result: not part of what a checkpoint must match.
        config = {"model": to_dict(params.model), "loss": to_dict(params.loss),
                  "train": {k: v for k, v in to_dict(params.train).items()
                            if k not in ("checkpoint_every", "data_workers")}}
    fingerprint = json.dumps({"name": run.name, **config, "epochs": run.epochs, **run.extra,
                              "code": code_digest()}, sort_keys=True)
    lr, betas = run.optimiser
    # Keep the dvclive history when a checkpoint may be resumed; the trainer rewinds it to the
    # checkpoint's step (or clears it when it starts from scratch after all).
    resume = any(os.path.exists(p) for p in checkpoint_paths(out_dir))
    if resume and ranks.is_main:
        _usable_live_dir(live_dir)
    from dvclive import Live  # here: the benchmark and the GPU machine run without dvclive
    logger = (Live(live_dir, dvcyaml=None, save_dvc_exp=False, resume=resume, report=None)
              if ranks.is_main else contextlib.nullcontext(None))
    with logger as live:
        if live is not None:
            live.log_params({"row": run.name, **run.extra})
        summary = trainer.train(generator=run.generator, losses=run.losses, task=run.task,
                                epochs=run.epochs, lr=lr, betas=betas, device=device,
                                out_dir=out_dir, live=live, checkpoint_every=t.checkpoint_every,
                                log_every=t.log_every, progress=progress and ranks.is_main,
                                desc=run.name, fingerprint=fingerprint, ranks=ranks,
                                monitor=run.monitor if ranks.is_main else None,
                                eval_every=t.eval_every, phases=run.phases,
                                acceleration=acceleration(t), data_workers=t.data_workers)
        pretrained, source = _vgg_source(run)
        summary.update(run.extra, generator_parameters=count_parameters(run.generator),
                       vgg_pretrained=pretrained, vgg_source=source,
                       world_size=ranks.world_size)
    if not ranks.is_main:
        return summary
    resources = {k: v for k, v in summary.items() if k in RESOURCE_KEYS or k.startswith("mem_")}
    write_json_atomic(os.path.join(live_dir, RESOURCES_FILE), resources)
    write_json_atomic(os.path.join(out_dir, SUMMARY_FILE),
                      {k: v for k, v in summary.items() if k not in resources})
    params_hash = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    commit = origin_commit(out_dir, params_hash, resumed=summary.get("resumes", 0) > 0)
    in_channels = run.extra["in_channels"]
    save_atomic({"generator": run.generator.state_dict(), "in_channels": in_channels,
                 **run.model_info,
                 "meta": model_metadata(run.kind, run.extra["dataset"], *run.size, run.name,
                                        in_channels, params_hash, commit)},
                os.path.join(out_dir, GENERATOR_FILE))
    return summary
