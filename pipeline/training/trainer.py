"""The one GAN trainer. It trains a generator against any list of loss plug-ins
(pipeline.models.losses): Pix2PixHD alone, + MEx, + A-MEx, or the translator G_I.

Schedule (paper §4): Adam(lr 2e-4, β = (0.5, 0.999)), lr constant for the first half of the
epochs, then linearly to 0. G step then D step on every batch (pix2pixHD).

Phases: a run is a list of `Phase`s, consecutive step ranges that say which plug-ins' generator
terms train G and which plug-ins' discriminator terms train their discriminators (like the G/D
phases of GAN codebases). The default is one joint phase with every plug-in (all the
segmentation rows); GL inpainting (Iizuka et al. 2017) uses three: completion network alone
(reconstruction), discriminators alone, then joint. A phase without generator terms runs G
without gradients and does not step its optimizer; one without discriminator terms does not
step the discriminators' optimizer. The phase is a function of the step, so a resume replays it.

Checkpoints (pipeline.training.checkpoints), written every `checkpoint_every` steps and at the end of
every epoch, resume a run bit-exactly: the lr is a function of the epoch and the data order a
function of (seed, epoch), so a resumed run replays the same batches. The run log
(pipeline.training.runlog: time, per-step memory, dvclive rows) continues across resumes.
"""
from __future__ import annotations

import math
import os
import random
import sys
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from pipeline.training.checkpoints import RunCheckpoints
from pipeline.training.distributed import Context
from pipeline.training.runlog import RunLog


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
    Under torchrun, `ranks` (pipeline.training.distributed) splits each epoch's batches over the ranks
    and DistributedDataParallel averages the gradients; only rank 0 writes checkpoints.
    `monitor(generator) -> {name: float}` (rank 0, no grad, eval mode) is logged to dvclive as
    eval/<name> every `eval_every` steps and after the last step: the learning curves of the
    task metrics. The dvclive step of every logged row is the training step.
    `phases` (see Phase) select, per step range, which plug-ins train G and which train their
    discriminators; with more than one phase the phase index is logged as train/phase.
    `acceleration` (see Acceleration): precision, memory layout, fused Adam, torch.compile.
    `data_workers` > 0 builds the batches in that many DataLoader processes (see `batches`).
    Loss values reach the host only every `log_every` steps (on CUDA the non-finite check runs
    then too; on CPU, where it costs nothing, every step). `timer` (pipeline.apps.benchmark) times
    the parts of each step.
    Returns a summary dict (steps, seconds, per-step peak memory, last loss terms, resumes)."""
    ranks = ranks or Context()
    timer = timer or _NoTimer()
    phases = tuple(phases)
    check_phases(phases, losses)
    memory_format = torch.channels_last if acceleration.channels_last else torch.contiguous_format
    generator.to(device, memory_format=memory_format)
    for loss in losses:
        loss.to(device, memory_format=memory_format)
    g_params, d_params = list(generator.parameters()), discriminator_parameters(losses)
    fused = {"fused": True} if acceleration.fused_adam else {}
    opt_g = torch.optim.Adam(g_params, lr=lr, betas=betas, **fused)
    opt_d = torch.optim.Adam(d_params, lr=lr, betas=betas, **fused) if d_params else None
    checkpoints = RunCheckpoints(out_dir, fingerprint, generator, losses, opt_g, opt_d,
                                 writes=ranks.is_main)
    start_epoch, start_batch, step, progress_before = checkpoints.resume(desc)
    # The modules the step calls: DDP wrappers under torchrun (rank 0's weights broadcast
    # now), the compiled generator; the plain modules are what checkpoints hold.
    run_generator = ranks.wrap(generator, device)
    if acceleration.compile:
        run_generator = torch.compile(run_generator)
    plugins = [(loss, ranks.wrap(_DiscriminatorStep(loss), device)) for loss in losses]
    run_log = RunLog(device, progress_before, live, step)
    check_every = 1 if device.type == "cpu" else max(1, log_every)

    generator.train()
    batches_per_epoch = len(task)
    total_steps = epochs * ranks.steps_per_epoch(batches_per_epoch)
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
                run_log.memory.start_step()
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
                g_terms, d_terms, joint = _plugin_terms(batch, generated, fused_map, plugins,
                                                        g_losses, phase, acceleration, device,
                                                        timer)
                _update(g_terms, d_terms, joint, opt_g, opt_d, g_params, d_params, timer)
                step += 1
                # detached: the terms' graphs (a joint plug-in's real pass) go with the step
                step_terms = {k: v.detach() for k, v in {**g_terms, **d_terms}.items()}
                del g_terms, d_terms
                timer.stop()
                timer.step_done()
                run_log.memory.end_step()
                logged = step % log_every == 0 or step == total_steps
                if step % check_every == 0 or logged:
                    _check_finite(step_terms, step, checkpoints.last_good, check_every)
                if logged:
                    run_log.terms = _host_values(step_terms)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in list(run_log.terms.items())[:3]},
                                    refresh=False)
                evaluates = monitor is not None and (step == total_steps or
                                                     (eval_every and step % eval_every == 0))
                run_log.log_step(step, logged=logged, lr=opt_g.param_groups[0]["lr"],
                                 phase_index=phase_index if len(phases) > 1 else None,
                                 evaluate=partial(_monitored, generator, monitor) if evaluates
                                 else None)
                bar.update(1)
                if (checkpoint_every and step % checkpoint_every == 0
                        and batch_index + 1 < batches_per_epoch):  # the epoch's end saves anyway
                    _check_finite(step_terms, step, checkpoints.last_good, check_every)
                    checkpoints.save(epoch, batch_index + 1, step, run_log.progress())
                timer.start("data")
            timer.stop()
            _check_finite(step_terms, step, checkpoints.last_good, check_every)
            checkpoints.save(epoch + 1, 0, step, run_log.progress())
    finally:
        bar.close()  # before the error line of a failed run, not after it
    if step_terms:
        run_log.terms = _host_values(step_terms)
    return {"steps": step, "epochs": epochs, "train_seconds": run_log.seconds(),
            "device": str(device), "resumes": run_log.resumes, **run_log.memory.summary(),
            **{f"final_{k}": v for k, v in run_log.terms.items()}}


def _plugin_terms(batch, generated, fused_map, plugins, g_losses, phase,
                  acceleration: Acceleration, device: torch.device, timer) -> tuple:
    """Each plug-in's terms of the step: (g_terms, d_terms, joint). `plugins`: (loss,
    discriminator step) pairs; the generator terms are those of the plug-ins in `g_losses`, the
    discriminator terms those of the plug-ins the phase trains. joint: a plug-in gave both from
    one discriminator pass (`joint_terms`)."""
    g_terms, d_terms = {}, {}
    joint = False
    for loss, discriminator_step in plugins:
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
    return g_terms, d_terms, joint


def _update(g_terms: dict, d_terms: dict, joint: bool, opt_g, opt_d, g_params: list,
            d_params: list, timer) -> None:
    """The step's backward passes and updates: D backward, G backward and update, D update.

    Each backward reaches its own parameters only (`inputs`): the D terms of a joint plug-in
    also depend on G, the G terms on the D weights. The D pass goes first and keeps the graph
    the G terms share with it. The gradients exist from their backward pass to their optimiser
    step only (set to None right after it): they are not held through the next step's forward
    passes, where the activations peak."""
    if d_terms:
        # the phase's discriminators only: the others keep no gradient, which Adam skips (a
        # zero gradient would still move them by momentum)
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


def _host_values(terms: dict) -> dict:
    """The step's loss terms as python floats (a host sync)."""
    return {k: float(v.detach()) for k, v in terms.items()}


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
