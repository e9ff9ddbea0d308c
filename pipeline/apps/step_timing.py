"""Timing training steps: where a step's time goes (StepTimer over the networks' forward and
backward), a task that times its batches, and running each measurement in a fresh process,
rounds interleaved."""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.training import trainer
from pipeline.config.sections import Params
from pipeline.data.inputs import EditBox
from pipeline.models.networks import (CanvasDiscriminators, MultiscaleDiscriminator,
                               PatchDiscriminator, VGG19Features, count_parameters)
from pipeline.data.preparation import box_rows

WARMUP = 2  # steps left out of the medians and the breakdown (allocator and kernel warm-up)


class StepTimer:
    """The trainer's `timer`: the wall time of every step (step_done) and, with `parts`, the
    seconds per part of the steps, summed (start(name) ends the current part and begins
    `name`, stop() ends it; `watch(module, name)` makes a module's forward passes a part of
    their own while they run, inside whatever part called it). The first WARMUP steps are left
    out of both. `count_flops`: the GFLOP of the first step (torch's FLOP counter, from the
    timer's creation to the first step_done) in gflop_first_step. On CUDA every boundary
    synchronises the device: with parts the steps are slower, so a benchmark takes its step
    times from a run without parts."""

    def __init__(self, device: torch.device, parts: bool = True, count_flops: bool = False):
        self.device, self.parts = device, parts
        self.seconds = collections.defaultdict(float)
        self.current, self.since, self.callers = None, None, []
        self.stamps = []
        # FLOPs of the first step, a warm-up step (the counter's dispatch costs no timed step)
        self.flop_counter = FlopCounterMode(display=False) if count_flops else None
        self.gflop_first_step = None
        if self.flop_counter is not None:
            self.flop_counter.__enter__()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _switch(self, name) -> None:
        now = self._now()
        if self.current is not None:
            self.seconds[self.current] += now - self.since
        self.current, self.since = name, now

    def start(self, name: str) -> None:
        if self.parts:
            self._switch(name)

    def stop(self) -> None:
        if self.parts:
            self._switch(None)

    def step_done(self) -> None:
        if self.flop_counter is not None:
            self.flop_counter.__exit__(None, None, None)
            self.gflop_first_step = self.flop_counter.get_total_flops() / 1e9
            self.flop_counter = None
        self.stamps.append(self._now())
        if len(self.stamps) == WARMUP:
            self.seconds.clear()

    def step_seconds(self) -> list:
        """Seconds of each step after the warm-up (the first of them timed from the end of
        the last warm-up step)."""
        return [b - a for a, b in zip(self.stamps[WARMUP - 1:], self.stamps[WARMUP:])]

    def watch(self, module: nn.Module, name: str) -> None:
        def enter(_module, _inputs):
            self.callers.append(self.current)
            self._switch(name)

        def leave(_module, _inputs, _output):
            self._switch(self.callers.pop())
        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)


def watch_networks(timer: StepTimer, losses) -> None:
    """Time each discriminator (a multiscale one as a whole; MEx's grouped D_j on the crop
    canvas as one) and the VGG19 forward apart."""
    for loss in losses:
        owner = trainer.plugin_name(loss)
        for name, module in loss.named_modules():
            if isinstance(module, VGG19Features):
                timer.watch(module, "VGG19_forward")
            elif isinstance(module, (MultiscaleDiscriminator, CanvasDiscriminators)) or (
                    isinstance(module, PatchDiscriminator) and ".scales." not in f".{name}"):
                timer.watch(module, f"{owner}.{name}_forward")


class TimedTask:
    """A task cut to `steps` batches: consecutive epochs of `task` until there are enough."""

    def __init__(self, task, steps: int):
        self.task, self.steps = task, steps

    def __len__(self):
        return self.steps

    def plan(self, epoch):
        plans = []
        while len(plans) < self.steps:
            plans += self.task.plan(epoch + len(plans))
        return plans[:self.steps]

    def build(self, plan):
        return self.task.build(plan)

    def epoch(self, epoch, device):
        for plan in self.plan(epoch):
            yield self.build(plan).to(device)


def rss_bytes() -> float:
    with open("/proc/self/status") as f:
        return next(float(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def configure_process(params: Params) -> None:
    """A benchmark process's CPU settings: the params' portable mode and threads (unless the
    process configured itself already: a spawned child of a stage does, from its command line
    and MEXGAN_PORTABLE)."""
    from pipeline.training import platform
    if not platform.is_configured():
        platform.configure(portable=params.train.portable, threads=params.train.cpu_threads)


def process_record() -> dict:
    """The CPU kernels this process runs with (portable mode or native, and the ISA used)."""
    from pipeline.training import platform
    return {"portable": platform.portable_mode(),
            "isa_used": torch.backends.cpu.get_cpu_capability()}


@contextlib.contextmanager
def cpu_kernels(portable: bool | None):
    """The fresh processes started inside run in portable mode (True) or with the native kernels
    (False); None leaves the setting to the params and the environment. A spawned child
    configures itself from MEXGAN_PORTABLE, which wins over train.portable."""
    from pipeline.training.platform import ENV_SWITCH
    if portable is None:
        yield
        return
    before = os.environ.get(ENV_SWITCH)
    os.environ[ENV_SWITCH] = "1" if portable else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENV_SWITCH]
        else:
            os.environ[ENV_SWITCH] = before


def train_boxes(params: Params, dataset: str, split, spec) -> dict:
    """image name -> its eligible EditBoxes (the dataset's size threshold and box rule)."""
    boxes = {}
    for row in box_rows("train", split, spec, params.datasets[dataset].size_threshold,
                        params.data.box_rule):
        boxes.setdefault(row[1], []).append(EditBox(row[1], row[2], tuple(row[3:7])))
    return boxes


def time_training(build, params: Params, device: torch.device, steps: int, lr, betas,
                   accel: trainer.Acceleration, phases=trainer.JOINT,
                   count_flops: bool = True) -> dict:
    """Train what `build()` returns -- (generator, losses, task) -- for `steps` steps: the
    measured steps' seconds and their median, per-step peak memory, the per-part breakdown
    (ms per step) and, `count_flops`, the GFLOP of a step (the first, a warm-up step). On CUDA
    the breakdown comes from a second, shorter run (its synchronisations would slow the first)."""

    runs = [False, True] if device.type == "cuda" else [True]
    result = {}
    for with_breakdown in runs:
        trainer.make_deterministic(params.train.seed, params.train.cpu_threads,
                                   params.train.deterministic)
        generator, losses, task = build()
        timer = StepTimer(device, parts=with_breakdown, count_flops=count_flops and not result)
        if with_breakdown:
            watch_networks(timer, losses)
        timed = TimedTask(task, steps if not result else WARMUP + 3)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        rss_before = rss_bytes() if device.type == "cpu" else None
        with tempfile.TemporaryDirectory() as out_dir:
            summary = trainer.train(generator=generator, losses=losses, task=timed, epochs=1,
                                    lr=lr, betas=betas, device=device, out_dir=out_dir,
                                    progress=False, acceleration=accel, timer=timer,
                                    phases=phases, log_every=params.train.log_every,
                                    data_workers=params.train.data_workers)
        if not result:
            result = measured_steps(
                timer, {k: v for k, v in summary.items() if k.startswith("mem_")}, rss_before)
            result["generator_parameters"] = count_parameters(generator)
            result["discriminator_parameters"] = sum(
                p.numel() for p in trainer.discriminator_parameters(losses))
        if with_breakdown:
            measured = len(timer.step_seconds())
            result["breakdown_ms"] = {name: 1000 * seconds / measured
                                      for name, seconds in sorted(timer.seconds.items(),
                                                                  key=lambda kv: -kv[1])}
    return {**result, **process_record()}


def measured_steps(timer: StepTimer, memory: dict, rss_before: float | None) -> dict:
    """What every timed row reports: its measured steps' seconds and their median, the GFLOP
    of its first step (when the timer counted it), its per-step peak memory (`memory`, the
    mem_* figures) and, on CPU (`rss_before` given), the RSS before training and its growth."""
    result = {"step_seconds": timer.step_seconds(),
              "median_step_seconds": statistics.median(timer.step_seconds()), **memory}
    if timer.gflop_first_step is not None:
        result["gflop_per_step"] = timer.gflop_first_step
    if rss_before is not None and "mem_cpu_step_peak_rss_max_gb" in memory:
        gb = 1024 ** 3
        result["rss_before_training_gb"] = rss_before / gb
        result["rss_growth_gb"] = memory["mem_cpu_step_peak_rss_max_gb"] - rss_before / gb
    return result


def _in_fresh_process(function, *args, **kwargs):
    """function(*args, **kwargs) in a new python process (spawn): every row starts from the
    same empty allocator, so times and peak RSS do not depend on the rows before it."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args, **kwargs).result()


def merge_rounds(rounds: list) -> dict:
    """One row's result from its rounds (see run_interleaved): the median and the best (fastest)
    of every round's measured steps, the per-round medians, per-step peak memory as the mean of
    the means and the max of the maxima, the breakdown averaged over the rounds; FLOPs,
    parameter counts and the process record from the first round."""
    merged = dict(rounds[0])
    merged["step_seconds"] = [seconds for result in rounds for seconds in result["step_seconds"]]
    merged["median_step_seconds"] = statistics.median(merged["step_seconds"])
    merged["best_step_seconds"] = min(merged["step_seconds"])
    merged["round_median_seconds"] = [result["median_step_seconds"] for result in rounds]
    for key in rounds[0]:
        values = [result[key] for result in rounds if result.get(key) is not None]
        if key.endswith("_mean_gb") and values:
            merged[key] = statistics.fmean(values)
        elif (key.endswith("_max_gb") or key == "rss_growth_gb") and values:
            merged[key] = max(values)
    if "breakdown_ms" in rounds[0]:
        parts = {part for result in rounds for part in result["breakdown_ms"]}
        merged["breakdown_ms"] = dict(sorted(
            ((part, statistics.fmean(result["breakdown_ms"].get(part, 0.0) for result in rounds))
             for part in parts), key=lambda kv: -kv[1]))
    return merged


def run_interleaved(jobs: dict, rounds: int, progress: str | None = None) -> dict:
    """name -> (function, args): each job called `rounds` times, each time in a fresh process,
    the jobs taking turns (A B C A B C ...), so that a slow spell of a shared machine falls on
    every row alike; `function(*args, count_flops=...)` counts FLOPs in the first round only.
    Returns name -> merge_rounds of its results. `progress`: a prefix for progress lines."""
    results = {name: [] for name in jobs}
    for round_index in range(rounds):
        for name, (function, args) in jobs.items():
            if progress is not None:
                turn = f" (round {round_index + 1}/{rounds})" if rounds > 1 else ""
                print(f"  {progress} {name}{turn} ...", file=sys.stderr, flush=True)
            results[name].append(_in_fresh_process(function, *args,
                                                   count_flops=round_index == 0))
    return {name: merge_rounds(runs) for name, runs in results.items()}
