"""The one GAN trainer. It trains a generator against any list of loss plug-ins
(pipeline.losses): Pix2PixHD alone, + MEx, + A-MEx, or the translator G_I.

Schedule (paper §4): Adam(lr 2e-4, β = (0.5, 0.999)), lr constant for the first half of the
epochs, then linearly to 0. G step then D step on every batch (pix2pixHD). Checkpoints are
atomic and hold everything needed to resume bit-exactly (models, optimizers, position, RNG).
"""
from __future__ import annotations

import logging
import math
import os
import random
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from pipeline.checkpoints import load_checkpoint, save_atomic

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


class NonFiniteLoss(RuntimeError):
    pass


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available")
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(setting)


def make_deterministic(seed: int, cpu_threads: int) -> None:
    """Seed python/numpy/torch and pin CPU threads + deterministic kernels (bit-exact CPU runs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(cpu_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def learning_rate(epoch: int, epochs: int, base: float) -> float:
    """Constant for epochs [0, E//2), then base·(E − epoch)/(E − E//2): linear, reaching 0 at E."""
    constant = epochs // 2
    if epoch < constant:
        return base
    return base * (epochs - epoch) / (epochs - constant)


def discriminator_parameters(losses) -> list:
    """Trainable parameters of all plug-ins (the frozen VGG is excluded)."""
    return [p for loss in losses for p in loss.parameters() if p.requires_grad]


def _rng_state():
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class MemoryMeter:
    """Peak and average accelerator memory (CUDA), or the process's peak RSS on CPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.samples = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def sample(self):
        if self.device.type == "cuda":
            self.samples.append(torch.cuda.memory_allocated(self.device))

    def summary(self) -> dict:
        if self.device.type == "cuda":
            gb = 1024 ** 3
            return {"mem_gpu_avg_gb": float(np.mean(self.samples)) / gb if self.samples else 0.0,
                    "mem_gpu_peak_gb": torch.cuda.max_memory_allocated(self.device) / gb}
        # ru_maxrss is in KiB on Linux: the whole process (torch itself included), not a GPU.
        return {"mem_cpu_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2}


def train(*, generator: nn.Module, losses: list, task, epochs: int, lr: float, betas: tuple,
          device: torch.device, out_dir: str, live=None, checkpoint_every: int = 0,
          log_every: int = 1, progress: bool = True, desc: str = "train",
          fingerprint: str = "") -> dict:
    """Train `generator` with the summed terms of `losses` on `task` (an object with
    `epoch(epoch, device)` yielding GanBatch and `__len__`). Resumes from out_dir/checkpoint.pt
    when it exists and was written for the same `fingerprint` (the resolved configuration).
    Returns a summary dict (steps, seconds, memory, last loss terms)."""
    os.makedirs(out_dir, exist_ok=True)
    generator.to(device)
    for loss in losses:
        loss.to(device)
    d_params = discriminator_parameters(losses)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(d_params, lr=lr, betas=betas) if d_params else None
    checkpoint_path = os.path.join(out_dir, CHECKPOINT)
    start_epoch, start_batch, step = 0, 0, 0
    state = resumable_checkpoint(out_dir, fingerprint)
    if state is not None:
        generator.load_state_dict(state["generator"])
        for loss, loss_state in zip(losses, state["losses"]):
            loss.load_state_dict(loss_state)
        opt_g.load_state_dict(state["opt_g"])
        if opt_d is not None:
            opt_d.load_state_dict(state["opt_d"])
        start_epoch, start_batch, step = state["epoch"], state["batch"], state["step"]
        _set_rng_state(state["rng"])
        log.info("resuming %s from %s at epoch %d, batch %d (step %d)", desc, checkpoint_path,
                 start_epoch, start_batch, step)
    last_good = checkpoint_path if state is not None else "none"

    def save(epoch, batch):
        nonlocal last_good
        save_atomic({"generator": generator.state_dict(),
                     "losses": [loss.state_dict() for loss in losses],
                     "opt_g": opt_g.state_dict(),
                     "opt_d": opt_d.state_dict() if opt_d is not None else None,
                     "epoch": epoch, "batch": batch, "step": step, "rng": _rng_state(),
                     "fingerprint": fingerprint},
                    checkpoint_path)
        last_good = checkpoint_path

    memory = MemoryMeter(device)
    started = time.time()
    generator.train()
    steps_per_epoch = len(task)
    bar = tqdm(total=epochs * steps_per_epoch, initial=step, desc=desc, disable=not progress,
               dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 15.0)
    terms = {}
    for epoch in range(start_epoch, epochs):
        for group in opt_g.param_groups + (opt_d.param_groups if opt_d else []):
            group["lr"] = learning_rate(epoch, epochs, lr)
        for batch_index, batch in enumerate(task.epoch(epoch, device)):
            if epoch == start_epoch and batch_index < start_batch:
                continue  # already trained before the resume
            generated = generator(batch.condition)
            fused = batch.fuse(generated)
            g_terms = {k: v for loss in losses for k, v in
                       loss.generator_terms(batch, generated, fused).items()}
            _check_finite(g_terms, step, last_good)
            opt_g.zero_grad(set_to_none=True)
            sum(g_terms.values()).backward()
            opt_g.step()
            d_terms = {k: v for loss in losses for k, v in
                       loss.discriminator_terms(batch, generated, fused).items()}
            if d_terms:
                _check_finite(d_terms, step, last_good)
                opt_d.zero_grad(set_to_none=True)
                sum(d_terms.values()).backward()
                opt_d.step()
            step += 1
            memory.sample()
            terms = {k: float(v.detach()) for k, v in {**g_terms, **d_terms}.items()}
            if live is not None and step % log_every == 0:
                for name, value in terms.items():
                    live.log_metric(f"train/{name}", value)
                live.log_metric("train/lr", opt_g.param_groups[0]["lr"])
                live.next_step()
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in list(terms.items())[:3]}, refresh=False)
            if checkpoint_every and step % checkpoint_every == 0:
                save(epoch, batch_index + 1)
        save(epoch + 1, 0)
    bar.close()
    summary = {"steps": step, "epochs": epochs, "train_seconds": time.time() - started,
               "device": str(device), **memory.summary(),
               **{f"final_{k}": v for k, v in terms.items()}}
    return summary


def resumable_checkpoint(out_dir: str, fingerprint: str):
    """The checkpoint in out_dir if it is readable and belongs to this configuration, else None
    (a checkpoint of other params -- DVC persists the folder across param changes -- is ignored
    and will be overwritten)."""
    path = os.path.join(out_dir, CHECKPOINT)
    state = load_checkpoint(path, ("generator", "losses", "opt_g", "epoch", "batch", "step",
                                   "rng", "fingerprint"))
    if state is not None and state["fingerprint"] != fingerprint:
        log.info("not resuming from %s: it was written for other params", path)
        return None
    return state


def _check_finite(terms: dict, step: int, last_good: str):
    for name, value in terms.items():
        if not math.isfinite(float(value.detach())):
            raise NonFiniteLoss(f"non-finite loss {name}={float(value)} at step {step + 1}; "
                                f"last good checkpoint: {last_good}")
