"""Model rows of the paper's tables, from params to networks: which generator, which loss
plug-ins. A row is a params entry (baselines / mex_rows in params.yaml), not code."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os

import torch
import yaml
from dvclive import Live

from pipeline import trainer
from pipeline.checkpoints import load_model_file, save_atomic
from pipeline.config import Params, to_dict
from pipeline.datasets import get_spec, read_split
from pipeline.distributed import context_from_env
from pipeline.inputs import EditTask, TranslationTask, condition_channels, read_boxes
from pipeline.losses import AMExLoss, MExLoss, Pix2PixHDLoss
from pipeline.networks import GlobalGenerator, VGG19Features, count_parameters

log = logging.getLogger(__name__)

GENERATOR_FILE = "generator.pt"
SUMMARY_FILE = "train_summary.json"


def build_generator(in_channels: int, params: Params) -> GlobalGenerator:
    m = params.model
    return GlobalGenerator(in_channels, 3, m.ngf, m.n_downsampling, m.n_blocks)


def build_losses(loss: str, in_channels: int, params: Params, q: int | None,
                 vgg: VGG19Features) -> list:
    """The loss plug-ins of a row: L_B, plus λ4·L_MEx (loss=mex) or λ4·L_A-MEx (loss=amex)."""
    m, lp = params.model, params.loss
    plugins = [Pix2PixHDLoss(in_channels, vgg, ndf=m.ndf, n_layers=m.n_layers_d, num_d=m.num_d,
                             lambda_adv=lp.lambda_adv, lambda_feat=lp.lambda_feat,
                             lambda_perc=lp.lambda_perc, vgg_layer_weights=lp.vgg_layer_weights,
                             on=m.basic_loss_on)]
    expansion = {"q": q, "alpha": params.alpha, "beta": params.beta, "ndf": m.ndf,
                 "n_layers": m.n_layers_d, "lambda_mex": lp.lambda_mex}
    if loss == "mex":
        plugins.append(MExLoss(in_channels, **expansion))
    elif loss == "amex":
        plugins.append(AMExLoss(in_channels, **expansion))
    elif loss != "pix2pixhd":
        raise ValueError(f"unknown loss {loss!r} (pix2pixhd, mex, amex)")
    return plugins


def files_md5(directory: str, names) -> str:
    """One md5 over the named files (the training data a checkpoint was made from)."""
    digest = hashlib.md5()
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


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


def _run(params: Params, *, name: str, task, generator, losses, epochs: int, out_dir: str,
         live_dir: str, extra: dict, progress: bool) -> dict:
    device = trainer.pick_device(params.train.device)
    ranks = context_from_env(device.type)  # torchrun: several ranks, rank 0 writes
    if ranks.enabled and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    t = params.train
    os.makedirs(out_dir, exist_ok=True)
    # The final model of an earlier run goes now: a run that fails leaves no generator.pt that
    # a later stage could take for this one's (generator.pt is written last, when complete).
    for stale in (GENERATOR_FILE, SUMMARY_FILE):
        if ranks.is_main and os.path.exists(os.path.join(out_dir, stale)):
            os.remove(os.path.join(out_dir, stale))
    # checkpoint_every changes where checkpoints are written, never the result: not part of
    # the configuration a checkpoint must match.
    train_params = {k: v for k, v in to_dict(params.train).items() if k != "checkpoint_every"}
    fingerprint = json.dumps({"name": name, "model": to_dict(params.model),
                              "loss": to_dict(params.loss), "train": train_params,
                              "epochs": epochs, **extra}, sort_keys=True)
    # Keep the dvclive history when a checkpoint may be resumed; the trainer rewinds it to the
    # checkpoint's step (or clears it when it starts from scratch after all).
    resume = any(os.path.exists(p) for p in trainer.checkpoint_paths(out_dir))
    if resume and ranks.is_main:
        _usable_live_dir(live_dir)
    logger = (Live(live_dir, dvcyaml=None, save_dvc_exp=False, resume=resume, report=None)
              if ranks.is_main else contextlib.nullcontext(None))
    with logger as live:
        if live is not None:
            live.log_params({"row": name, **extra})
        summary = trainer.train(generator=generator, losses=losses, task=task, epochs=epochs,
                                lr=t.lr, betas=(t.beta1, t.beta2), device=device,
                                out_dir=out_dir, live=live, checkpoint_every=t.checkpoint_every,
                                log_every=t.log_every, progress=progress and ranks.is_main,
                                desc=name, fingerprint=fingerprint, ranks=ranks)
        vgg = losses[0].vgg
        summary.update(extra, generator_parameters=count_parameters(generator),
                       vgg_pretrained=int(vgg.pretrained), vgg_source=vgg.source,
                       world_size=ranks.world_size)
        for key, value in summary.items():
            if live is not None and isinstance(value, (int, float)) and key.startswith("mem_"):
                live.summary[key] = value
    if not ranks.is_main:
        return summary
    write_json_atomic(os.path.join(out_dir, SUMMARY_FILE), summary)
    save_atomic({"generator": generator.state_dict(), "in_channels": extra["in_channels"],
                 "model": to_dict(params.model)}, os.path.join(out_dir, GENERATOR_FILE))
    return summary


def write_json_atomic(path: str, data) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def check_boxes(path: str, boxes: dict, split, spec) -> None:
    """Every box of a box list names an image of `split`, lies inside it and has a label of the
    dataset's palette (a hand-edited or stale list fails here, naming the file)."""
    height, width = split.labels.shape[1:]
    names = set(split.names)
    for image, entries in boxes.items():
        if image not in names:
            raise ValueError(f"{path}: image {image} is not in the prepared split")
        for entry in entries:
            x1, y1, x2, y2 = entry.box
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                raise ValueError(f"{path}: box {entry.box} of image {image} is empty or outside "
                                 f"the {width}x{height} image")
            if not 0 <= entry.label < spec.num_labels:
                raise ValueError(f"{path}: label {entry.label} of image {image} is outside the "
                                 f"{spec.name} palette (0..{spec.num_labels - 1})")


def train_row(params: Params, row_name: str, data_dir: str, out_dir: str, live_dir: str,
              progress: bool = True) -> dict:
    """Train the structure generator of one table row on its prepared dataset."""
    row = params.row(row_name)
    spec = get_spec(row.dataset)
    t = params.train
    trainer.make_deterministic(t.seed, t.cpu_threads)
    split = read_split(os.path.join(data_dir, "train.h5"))
    boxes_path = os.path.join(data_dir, "boxes.csv")
    boxes = read_boxes(boxes_path, split="train")
    check_boxes(boxes_path, boxes, split, spec)
    if not any(boxes.get(name) for name in split.names):
        raise ValueError(f"{boxes_path}: no train box (the prepared data has no eligible box; "
                         f"check datasets.{row.dataset}.size_threshold and rerun prepare)")
    task = EditTask(split, spec, boxes, batch_size=t.batch_size, flip=t.flip, seed=t.seed)
    channels = condition_channels(spec)
    q = params.row_q(row_name) if row.loss != "pix2pixhd" else None
    generator = build_generator(channels, params)
    losses = build_losses(row.loss, channels, params, q,
                          VGG19Features(params.loss.vgg_weights_path))
    extra = {"dataset": row.dataset, "loss": row.loss, "q": -1 if q is None else q,
             "alpha": params.alpha if q is not None else -1,
             "beta": params.beta if q is not None else -1,
             "in_channels": channels, "train_images": len(task.usable),
             "data_md5": files_md5(data_dir, ("train.h5", "boxes.csv"))}
    return _run(params, name=row_name, task=task, generator=generator, losses=losses,
                epochs=t.epochs, out_dir=out_dir, live_dir=live_dir, extra=extra,
                progress=progress)


def train_translator(params: Params, dataset: str, data_dir: str, out_dir: str, live_dir: str,
                     progress: bool = True) -> dict:
    """Train the downstream translator G_I (colour map -> photo, pix2pixHD objective)."""
    spec = get_spec(dataset)
    t = params.train
    trainer.make_deterministic(t.seed, t.cpu_threads)
    split = read_split(os.path.join(data_dir, "train.h5"))
    task = TranslationTask(split, spec, batch_size=t.batch_size, flip=t.flip, seed=t.seed)
    generator = build_generator(3, params)
    losses = build_losses("pix2pixhd", 3, params, None,
                          VGG19Features(params.loss.vgg_weights_path))
    extra = {"dataset": dataset, "loss": "pix2pixhd", "in_channels": 3,
             "train_images": len(split.names), "data_md5": files_md5(data_dir, ("train.h5",))}
    return _run(params, name=f"translator-{dataset}", task=task, generator=generator,
                losses=losses, epochs=params.translator.epochs, out_dir=out_dir,
                live_dir=live_dir, extra=extra, progress=progress)


def load_generator(model_dir: str, device) -> GlobalGenerator:
    """A trained generator from `model_dir/generator.pt`, in eval mode."""
    state = load_model_file(os.path.join(model_dir, GENERATOR_FILE), ("generator", "in_channels"))
    m = state["model"]
    generator = GlobalGenerator(state["in_channels"], 3, m["ngf"], m["n_downsampling"],
                                m["n_blocks"])
    generator.load_state_dict(state["generator"])
    return generator.to(device).eval()
