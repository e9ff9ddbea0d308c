"""The one GAN trainer. It trains a generator against any list of loss plug-ins
(pipeline.losses): Pix2PixHD alone, + MEx, + A-MEx, or the translator G_I.

Schedule (paper §4): Adam(lr 2e-4, β = (0.5, 0.999)), lr constant for the first half of the
epochs, then linearly to 0. G step then D step on every batch (pix2pixHD).

Phases: a run is a list of `Phase`s, consecutive step ranges that say which plug-ins' generator
terms train G and which plug-ins' discriminator terms train their discriminators (like the G/D
phases of GAN codebases). The default is one joint phase with every plug-in (all the
segmentation rows); GL inpainting (Iizuka et al. 2017) uses three: completion network alone
(reconstruction), discriminators alone, then joint. A phase without generator terms runs G
without gradients and does not step its optimizer; one without discriminator terms does not
step the discriminators' optimizer. The phase is a function of the step, so a resume replays it.

Checkpoints (every `checkpoint_every` steps and at the end of every epoch) are atomic and hold
everything needed to resume bit-exactly: generator, discriminators, both Adam states, the
position (epoch, batch within the epoch, step), every RNG state and the run's elapsed time and
memory. The lr is a function of the epoch and the data order a function of (seed, epoch), so a
resumed run replays the same batches. The newest checkpoint is `checkpoint.pt`, the one before
it `checkpoint.prev.pt`: a damaged newest file falls back to the previous one, and a file of
other params is never used. The frozen VGG19 is left out (it is rebuilt identically by every
run; a digest in the checkpoint checks that).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import re
import resource
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from pipeline.checkpoints import load_checkpoint, remove_stale_temps, save_atomic
from pipeline.distributed import Context
from pipeline.networks import VGG19Features
from pipeline.atomic import atomic_open

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
CHECKPOINT_FORMAT = 2
CHECKPOINT_KEYS = ("format", "generator", "losses", "opt_g", "opt_d", "epoch", "batch", "step",
                   "rng", "fingerprint", "frozen_digest", "progress")


class NonFiniteLoss(RuntimeError):
    pass


#---------------------------------------------------------------------------------------------
# Phases


@dataclass(frozen=True)
class Phase:
    """A stretch of `steps` training steps (None: to the end of training).
    generator: names of the plug-ins whose generator terms train G (None: every plug-in; (): G
    is not trained in this phase). discriminator: the same for the discriminator terms."""
    name: str
    steps: int | None = None
    generator: tuple | None = None
    discriminator: tuple | None = None


JOINT = (Phase("joint"),)


def plugin_name(loss) -> str:
    """How a phase names a loss plug-in: its `name` attribute, else its class name."""
    return getattr(loss, "name", None) or type(loss).__name__


def check_phases(phases, losses) -> None:
    """Every phase names existing plug-ins and has a positive length; only the last may be open."""
    if not phases:
        raise ValueError("phases: at least one phase is needed")
    names = {plugin_name(loss) for loss in losses}
    for index, phase in enumerate(phases):
        if phase.steps is None and index != len(phases) - 1:
            raise ValueError(f"phase {phase.name!r}: only the last phase may run to the end")
        if phase.steps is not None and phase.steps < 1:
            raise ValueError(f"phase {phase.name!r}: {phase.steps} steps (need >= 1)")
        for selected in (phase.generator, phase.discriminator):
            unknown = sorted(set(selected or ()) - names)
            if unknown:
                raise ValueError(f"phase {phase.name!r}: no loss plug-in {unknown[0]!r} "
                                 f"(plug-ins: {', '.join(sorted(names))})")


def phase_at(phases, step: int) -> tuple:
    """(index, Phase) of the 0-based training step `step`; past the last end, the last phase."""
    end = 0
    for index, phase in enumerate(phases):
        if phase.steps is None:
            return index, phase
        end += phase.steps
        if step < end:
            return index, phase
    return len(phases) - 1, phases[-1]


def _active(losses, selected) -> list:
    return [loss for loss in losses if selected is None or plugin_name(loss) in selected]


def pick_device(setting: str) -> torch.device:
    """train.device as a torch device: auto (CUDA when present), cpu, cuda or cuda:N."""
    if setting.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"train.device is {setting} but no CUDA device is available")
        index = torch.device(setting).index
        if index is not None and index >= torch.cuda.device_count():
            raise RuntimeError(f"train.device is {setting} but only "
                               f"{torch.cuda.device_count()} CUDA devices are visible")
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(setting)


def make_deterministic(seed: int, cpu_threads: int, algorithms: bool = False) -> None:
    """Seed python/numpy/torch and pin the CPU threads (with portable mode: bit-exact CPU runs).
    `algorithms` (train.deterministic) also forces torch's deterministic kernels: needed for
    run-to-run identical GPU results, slower there; CPU kernels are deterministic already."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(cpu_threads)
    torch.use_deterministic_algorithms(algorithms, warn_only=True)
    if algorithms:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@dataclass(frozen=True)
class Acceleration:
    """How a step runs on the device (train params of the same names). None of these changes
    the computation beyond rounding; each is part of the checkpoint fingerprint all the same.

    precision:     fp32 | bf16 (torch.autocast of the forward passes and loss terms; no
                   gradient scaler is needed for bf16)
    channels_last: NHWC memory layout for the networks and their inputs (faster convolutions
                   on GPUs and oneDNN CPUs)
    fused_adam:    torch's fused Adam kernel: one pass over each parameter group's weights,
                   gradients and moments (on the CPU ~7x faster than the per-tensor loop)
    compile:       torch.compile the generator (the discriminators see MEx crops of many
                   sizes, which would recompile)"""
    precision: str = "fp32"
    channels_last: bool = False
    fused_adam: bool = True
    compile: bool = False

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def layout(self, tensor):
        """A 4-d input in the networks' memory layout."""
        if self.channels_last and tensor is not None and tensor.dim() == 4:
            return tensor.contiguous(memory_format=torch.channels_last)
        return tensor


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


#---------------------------------------------------------------------------------------------
# What a checkpoint holds of the loss plug-ins


def _frozen_prefixes(loss: nn.Module) -> tuple:
    """State-dict prefixes of the frozen feature extractors inside a plug-in (the VGG19 of the
    perceptual loss, ~80 MB): rebuilt identically by every run, so not checkpointed."""
    return tuple(f"{name}." for name, module in loss.named_modules()
                 if name and isinstance(module, VGG19Features))


def _loss_state(loss: nn.Module) -> dict:
    skip = _frozen_prefixes(loss)
    return {k: v for k, v in loss.state_dict().items() if not (skip and k.startswith(skip))}


def _load_loss_state(loss: nn.Module, state: dict) -> None:
    skip = _frozen_prefixes(loss)
    missing, unexpected = loss.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (skip and k.startswith(skip))]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit {type(loss).__name__}: missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]}")


def frozen_digest(losses) -> str:
    """md5 of the frozen weights the checkpoints leave out (a resume must see the same ones)."""
    digest = hashlib.md5()
    for loss in losses:
        skip = _frozen_prefixes(loss)
        for key, value in loss.state_dict().items():
            if skip and key.startswith(skip):
                digest.update(key.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


#---------------------------------------------------------------------------------------------
# Finding the checkpoint to resume from


def checkpoint_paths(out_dir: str) -> list:
    """The checkpoint files of out_dir, newest first."""
    return [os.path.join(out_dir, CHECKPOINT), os.path.join(out_dir, PREVIOUS_CHECKPOINT)]


def find_checkpoint(out_dir: str, fingerprint: str, digest: str | None = None):
    """(state, path) of the newest checkpoint in out_dir that is readable, complete and was
    written for this configuration (`fingerprint`; `digest` of the frozen weights when given);
    (None, None) when there is none. A damaged newest file falls back to checkpoint.prev.pt; a
    checkpoint of other params (DVC persists the folder across param changes) is ignored and
    will be overwritten. Every skipped file is logged with the reason."""
    for path in checkpoint_paths(out_dir):
        if not os.path.exists(path):
            continue
        state = load_checkpoint(path, CHECKPOINT_KEYS)  # logs why a damaged file is skipped
        if state is None:
            continue
        if state["format"] != CHECKPOINT_FORMAT or state["fingerprint"] != fingerprint:
            log.info("not resuming from %s: it was written for other params or code", path)
            continue
        if digest is not None and state["frozen_digest"] != digest:
            log.warning("not resuming from %s: the frozen VGG19 weights differ from the ones it "
                        "was trained with", path)
            continue
        return state, path
    return None, None


def resumable_checkpoint(out_dir: str, fingerprint: str):
    """The state of find_checkpoint (None when training starts from scratch)."""
    return find_checkpoint(out_dir, fingerprint)[0]


#---------------------------------------------------------------------------------------------
# Memory and dvclive across resumes


_RSS_PEAK = re.compile(r"VmHWM:\s+(\d+) kB")


def _reset_rss_peak() -> bool:
    """Reset this process's peak RSS (Linux: writing 5 to /proc/self/clear_refs resets VmHWM).
    False where the system does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_peak_bytes() -> float:
    """VmHWM (peak RSS since the last reset), else ru_maxrss (the process's whole-life peak)."""
    try:
        with open("/proc/self/status") as f:
            return float(_RSS_PEAK.search(f.read()).group(1)) * 1024
    except (OSError, AttributeError):
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class StepMemory:
    """Peak memory of each training step (paper Table 4 "Mem"), summarised as the mean and the
    max over steps, carried across resumes (`previous`: the state of the runs before).

    CUDA: the caching allocator's peak between a reset before the step and its end
    (max_memory_allocated: parameters, gradients, Adam state and the step's activations, no
    host sync). CPU: the process's peak RSS over the step (VmHWM reset through
    /proc/self/clear_refs), torch's libraries and the data included -- a different quantity;
    where the reset is not allowed, the process's whole-life peak RSS (`mem_cpu_peak_rss_gb`)."""

    def __init__(self, device: torch.device, previous: dict | None = None):
        self.device = device
        previous = previous or {}
        self.total = float(previous.get("total", 0.0))
        self.count = int(previous.get("count", 0))
        self.max = float(previous.get("max", 0.0))
        self.per_step = device.type == "cuda" or _reset_rss_peak()

    def start_step(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.per_step:
            _reset_rss_peak()

    def end_step(self) -> None:
        if self.device.type == "cuda":
            peak = float(torch.cuda.max_memory_allocated(self.device))
        else:
            peak = _rss_peak_bytes()
        self.total += peak
        self.count += 1
        self.max = max(self.max, peak)

    def state(self) -> dict:
        return {"total": self.total, "count": self.count, "max": self.max}

    def summary(self) -> dict:
        gb = 1024 ** 3
        mean = self.total / self.count / gb if self.count else 0.0
        if self.device.type == "cuda":
            return {"mem_gpu_step_peak_mean_gb": mean, "mem_gpu_step_peak_max_gb": self.max / gb}
        if self.per_step:
            return {"mem_cpu_step_peak_rss_mean_gb": mean,
                    "mem_cpu_step_peak_rss_max_gb": self.max / gb}
        return {"mem_cpu_peak_rss_gb": self.max / gb}


def rewind_live(live, step: int) -> None:
    """Make a dvclive logger continue after training step `step` (its TSV rows are indexed by the
    training step): rows logged after the checkpoint by a killed run (and a half-written last
    row) are dropped. step = 0 removes the metric history (a fresh start)."""
    folder = os.path.join(live.plots_dir, "metrics")
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if not name.endswith(".tsv"):
                continue
            path = os.path.join(root, name)
            with open(path, newline="") as f:
                lines = f.read().splitlines()
            kept = []
            if lines:
                header = lines[0].split("\t")
                position = header.index("step") if "step" in header else None
                for line in lines[1:]:
                    fields = line.split("\t")
                    if position is None or len(fields) != len(header):
                        continue
                    try:
                        if int(fields[position]) <= step and step > 0:
                            float(fields[-1])
                            kept.append(line)
                    except ValueError:
                        continue
            if not kept:
                os.remove(path)
                continue
            with atomic_open(path, "w", newline="") as f:
                f.write("\n".join([lines[0]] + kept) + "\n")
    if step == 0:
        live.summary = {}
    live.step = step


#---------------------------------------------------------------------------------------------
# Training


def train(*, generator: nn.Module, losses: list, task, epochs: int, lr: float, betas: tuple,
          device: torch.device, out_dir: str, live=None, checkpoint_every: int = 0,
          log_every: int = 1, progress: bool = True, desc: str = "train",
          fingerprint: str = "", ranks: Context | None = None, monitor=None,
          eval_every: int = 0, phases=JOINT, acceleration: Acceleration = Acceleration(),
          timer=None, data_workers: int = 0) -> dict:
    """Train `generator` with the summed terms of `losses` on `task` (an object with
    `epoch(epoch, device)` yielding GanBatch and `__len__`). Resumes from the newest good
    checkpoint in out_dir written for the same `fingerprint` (the resolved configuration).
    Under torchrun, `ranks` (pipeline.distributed) splits each epoch's batches over the ranks
    and DistributedDataParallel averages the gradients; only rank 0 writes checkpoints.
    `monitor(generator) -> {name: float}` (rank 0, no grad, eval mode) is logged to dvclive as
    eval/<name> every `eval_every` steps and after the last step: the learning curves of the
    task metrics. The dvclive step of every logged row is the training step.
    `phases` (see Phase) select, per step range, which plug-ins train G and which train their
    discriminators; with more than one phase the phase index is logged as train/phase.
    `acceleration` (see Acceleration): precision, memory layout, fused Adam, torch.compile.
    `data_workers` > 0 builds the batches in that many DataLoader processes (see `batches`).
    Loss values reach the host only every `log_every` steps (on CUDA the non-finite check runs
    then too; on CPU, where it costs nothing, every step). `timer` (pipeline.benchmark) times
    the parts of each step.
    Returns a summary dict (steps, seconds, per-step peak memory, last loss terms, resumes)."""
    ranks = ranks or Context()
    timer = timer or _NoTimer()
    phases = tuple(phases)
    check_phases(phases, losses)
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temps(out_dir)
    memory_format = torch.channels_last if acceleration.channels_last else torch.contiguous_format
    generator.to(device, memory_format=memory_format)
    for loss in losses:
        loss.to(device, memory_format=memory_format)
    g_params, d_params = list(generator.parameters()), discriminator_parameters(losses)
    fused = {"fused": True} if acceleration.fused_adam else {}
    opt_g = torch.optim.Adam(g_params, lr=lr, betas=betas, **fused)
    opt_d = torch.optim.Adam(d_params, lr=lr, betas=betas, **fused) if d_params else None
    checkpoint_path, previous_path = checkpoint_paths(out_dir)
    digest = frozen_digest(losses)
    start_epoch, start_batch, step = 0, 0, 0
    progress_state = {"train_seconds": 0.0, "terms": {}, "memory": None, "resumes": 0}
    state, resumed_from = find_checkpoint(out_dir, fingerprint, digest)
    if state is not None:
        generator.load_state_dict(state["generator"])
        if len(state["losses"]) != len(losses):
            raise ValueError(f"{resumed_from}: {len(state['losses'])} loss plug-ins, "
                             f"this run has {len(losses)}")
        for loss, loss_state in zip(losses, state["losses"]):
            _load_loss_state(loss, loss_state)
        opt_g.load_state_dict(state["opt_g"])
        if opt_d is not None:
            opt_d.load_state_dict(state["opt_d"])
        start_epoch, start_batch, step = state["epoch"], state["batch"], state["step"]
        _set_rng_state(state["rng"])
        progress_state = dict(state["progress"], resumes=state["progress"]["resumes"] + 1)
        log.info("%s: resuming from %s at epoch %d, batch %d (step %d)", desc, resumed_from,
                 start_epoch, start_batch, step)
    elif any(os.path.exists(p) for p in (checkpoint_path, previous_path)):
        log.info("%s: no usable checkpoint in %s, training from scratch", desc, out_dir)
    # The modules the step calls: DDP wrappers under torchrun (rank 0's weights broadcast
    # now), the compiled generator; the plain modules are what checkpoints hold.
    run_generator = ranks.wrap(generator, device)
    if acceleration.compile:
        run_generator = torch.compile(run_generator)
    discriminator_steps = [ranks.wrap(_DiscriminatorStep(loss), device) for loss in losses]
    if live is not None:
        rewind_live(live, step)
    # checkpoint.pt is rotated to checkpoint.prev.pt only while it holds a state of this run;
    # a damaged or foreign file there is simply overwritten.
    latest_is_ours = resumed_from == checkpoint_path
    last_good = resumed_from or "none"
    memory = StepMemory(device, progress_state["memory"])
    started = time.time() - progress_state["train_seconds"]
    terms = dict(progress_state["terms"])
    check_every = 1 if device.type == "cpu" else max(1, log_every)

    def save(epoch, batch):
        nonlocal last_good, latest_is_ours
        if not ranks.is_main:
            return
        save_atomic({"format": CHECKPOINT_FORMAT, "generator": generator.state_dict(),
                     "losses": [_loss_state(loss) for loss in losses],
                     "opt_g": opt_g.state_dict(),
                     "opt_d": opt_d.state_dict() if opt_d is not None else None,
                     "epoch": epoch, "batch": batch, "step": step, "rng": _rng_state(),
                     "fingerprint": fingerprint, "frozen_digest": digest,
                     "progress": {"train_seconds": time.time() - started, "terms": terms,
                                  "memory": memory.state(),
                                  "resumes": progress_state["resumes"]}},
                    checkpoint_path, keep_previous=previous_path if latest_is_ours else None)
        last_good, latest_is_ours = checkpoint_path, True

    generator.train()
    batches_per_epoch = len(task)
    steps_per_epoch = ranks.steps_per_epoch(batches_per_epoch)
    total_steps = epochs * steps_per_epoch
    bar = tqdm(total=total_steps, initial=step, desc=desc,
               disable=not progress or not ranks.is_main,
               dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 15.0)
    step_terms = {}
    try:
        for epoch in range(start_epoch, epochs):
            for group in opt_g.param_groups + (opt_d.param_groups if opt_d else []):
                group["lr"] = learning_rate(epoch, epochs, lr)
            timer.start("data")
            for batch_index, batch in enumerate(batches(task, epoch, device, data_workers,
                                                        skip=start_batch if epoch == start_epoch
                                                        else 0)):
                if batch is None:
                    continue  # already trained before the resume (same order: seed, epoch)
                if not ranks.owns(batch_index, batches_per_epoch):
                    continue
                memory.start_step()
                batch = _in_layout(batch, acceleration)
                phase_index, phase = phase_at(phases, step)
                g_losses = _active(losses, phase.generator)
                timer.start("G_forward")
                # Without generator terms G is fixed in this phase: its output, computed
                # without gradients, only feeds the Ds (train mode: batch-norm statistics keep
                # following the data).
                with torch.set_grad_enabled(bool(g_losses)), acceleration.autocast(device):
                    generated = run_generator(batch.condition)
                    fused_map = batch.fuse(generated)
                g_terms, d_terms = {}, {}
                joint = False
                for loss, discriminator_step in zip(losses, discriminator_steps):
                    name = plugin_name(loss)
                    trains_g = loss in g_losses
                    trains_d = phase.discriminator is None or name in phase.discriminator
                    with acceleration.autocast(device):
                        if trains_g and trains_d and hasattr(loss, "joint_terms"):
                            timer.start(f"{name}_terms")
                            generator_part, discriminator_part = discriminator_step(
                                batch, generated, fused_map, joint=True)
                            g_terms.update(generator_part)
                            d_terms.update(discriminator_part)
                            joint = True
                            continue
                        if trains_g:
                            timer.start(f"{name}_G_terms")
                            g_terms.update(loss.generator_terms(batch, generated, fused_map))
                        if trains_d:
                            timer.start(f"{name}_D_terms")
                            d_terms.update(discriminator_step(batch, generated, fused_map))
                # Each backward reaches its own parameters only (`inputs`): the D terms of a
                # joint plug-in also depend on G, the G terms on the D weights. The D pass goes
                # first and keeps the graph the G terms share with it.
                # The gradients exist from their backward pass to their optimiser step only
                # (set to None right after it): they are not held through the next step's
                # forward passes, where the activations peak.
                if d_terms:
                    # the phase's discriminators only: the others keep no gradient, which Adam
                    # skips (a zero gradient would still move them by momentum)
                    timer.start("D_backward")
                    torch.autograd.backward(sum(d_terms.values()), inputs=d_params,
                                            retain_graph=joint and bool(g_terms))
                if g_terms:
                    timer.start("G_backward")
                    torch.autograd.backward(sum(g_terms.values()), inputs=g_params)
                    timer.start("G_optimizer")
                    opt_g.step()
                    opt_g.zero_grad(set_to_none=True)
                if d_terms:
                    timer.start("D_optimizer")
                    opt_d.step()
                    opt_d.zero_grad(set_to_none=True)
                step += 1
                # detached: the terms' graphs (a joint plug-in's real pass) go with the step
                step_terms = {k: v.detach() for k, v in {**g_terms, **d_terms}.items()}
                del g_terms, d_terms
                timer.stop()
                timer.step_done()
                memory.end_step()
                logged = step % log_every == 0 or step == total_steps
                if step % check_every == 0 or logged:
                    _check_finite(step_terms, step, last_good, check_every)
                if logged:
                    terms = {k: float(v.detach()) for k, v in step_terms.items()}
                    bar.set_postfix({k: f"{v:.3f}" for k, v in list(terms.items())[:3]},
                                    refresh=False)
                if live is not None:
                    live.step = step
                    if logged:
                        for name, value in terms.items():
                            live.log_metric(f"train/{name}", value)
                        live.log_metric("train/lr", opt_g.param_groups[0]["lr"])
                        if len(phases) > 1:
                            live.log_metric("train/phase", phase_index)
                    last = step == total_steps
                    if monitor is not None and (last or (eval_every and step % eval_every == 0)):
                        for name, value in _monitored(generator, monitor).items():
                            live.log_metric(f"eval/{name}", value)
                    if logged:
                        live.sync()
                bar.update(1)
                if (checkpoint_every and step % checkpoint_every == 0
                        and batch_index + 1 < batches_per_epoch):  # the epoch's end saves anyway
                    _check_finite(step_terms, step, last_good, check_every)
                    save(epoch, batch_index + 1)
                timer.start("data")
            timer.stop()
            _check_finite(step_terms, step, last_good, check_every)
            save(epoch + 1, 0)
    finally:
        bar.close()  # before the error line of a failed run, not after it
    if step_terms:
        terms = {k: float(v.detach()) for k, v in step_terms.items()}
    summary = {"steps": step, "epochs": epochs, "train_seconds": time.time() - started,
               "device": str(device), "resumes": progress_state["resumes"], **memory.summary(),
               **{f"final_{k}": v for k, v in terms.items()}}
    return summary


class _DiscriminatorStep(nn.Module):
    """A loss plug-in's discriminator terms -- or, `joint`, its (generator, discriminator) terms
    from one discriminator pass -- as one module call, so that DistributedDataParallel sees one
    forward per backward however many times the plug-in calls its discriminators."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, batch, generated, fused, joint: bool = False):
        if joint:
            return self.loss.joint_terms(batch, generated, fused)
        return self.loss.discriminator_terms(batch, generated, fused)


class _NoTimer:
    def start(self, name):
        pass

    def stop(self):
        pass

    def step_done(self):
        pass


class _PlannedBatches(torch.utils.data.Dataset):
    """The batches of one epoch's plans, built by task.build (in DataLoader workers)."""

    def __init__(self, task, plans):
        self.task, self.plans = task, plans

    def __len__(self):
        return len(self.plans)

    def __getitem__(self, index):
        return self.task.build(self.plans[index])


def _one_thread(_worker):
    torch.set_num_threads(1)


def batches(task, epoch: int, device: torch.device, workers: int = 0, skip: int = 0):
    """The epoch's batches on `device`. workers = 0: task.epoch in this process. workers > 0
    (a task with plan/build): the plan -- every random draw -- is made here, the batches are
    built in `workers` DataLoader processes ahead of the step, in pinned memory on CUDA, and
    copied without blocking; the same batches either way. The first `skip` batches (already
    trained before a resume) are yielded as None without being built."""
    if workers == 0 or not hasattr(task, "plan"):
        for index, batch in enumerate(task.epoch(epoch, device)):
            yield None if index < skip else batch
        return
    plans = task.plan(epoch)
    yield from (None for _ in range(min(skip, len(plans))))
    loader = torch.utils.data.DataLoader(
        _PlannedBatches(task, plans[skip:]), batch_size=None, num_workers=workers,
        pin_memory=device.type == "cuda", worker_init_fn=_one_thread,
        prefetch_factor=4, persistent_workers=False)
    for batch in loader:
        yield batch.to(device, non_blocking=True)


def _in_layout(batch, acceleration: Acceleration):
    """The batch's 4-d tensors in the networks' memory layout (channels_last or as they are)."""
    return batch.map_tensors(acceleration.layout) if acceleration.channels_last else batch


def _monitored(generator: nn.Module, monitor) -> dict:
    """monitor(generator) in eval mode without gradients; the train mode is restored."""
    generator.eval()
    try:
        with torch.no_grad():
            return {name: float(value) for name, value in monitor(generator).items()}
    finally:
        generator.train()


def _check_finite(terms: dict, step: int, last_good: str, every: int = 1):
    """NonFiniteLoss when a term of training step `step` is NaN or inf (one host sync).
    `every`: the steps between checks, named in the message when > 1."""
    if not terms:
        return
    values = torch.stack([v.detach().float().reshape(()) for v in terms.values()]).cpu()
    if bool(torch.isfinite(values).all()):
        return
    name, number = next((n, float(v)) for n, v in zip(terms, values) if not math.isfinite(v))
    where = f"at step {step}" if every == 1 else \
        f"at step {step} (checked every {every} steps: the first bad step may be earlier)"
    raise NonFiniteLoss(f"non-finite loss {name}={number} {where}; "
                        f"last good checkpoint: {last_good}")
