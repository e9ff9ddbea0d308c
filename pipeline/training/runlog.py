"""The run log of a training run: what it records beyond its weights -- training time, peak
memory per step (paper Table 4 "Mem"), the last logged loss terms, the number of resumes --
carried across resumes by the checkpoints (pipeline.training.checkpoints), and its dvclive rows, indexed
by the training step and rewound to the checkpoint's step on a resume."""
from __future__ import annotations

import os
import re
import resource
import time

import torch

from pipeline.atomic import atomic_open

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



class RunLog:
    """The log of a training run from training step `step` on. `progress`: what the runs before
    a resume logged (a checkpoint's `progress`; None: a fresh start). `live`: the run's dvclive
    logger (None: no dvclive rows), rewound to `step`."""

    def __init__(self, device: torch.device, progress: dict | None = None, live=None,
                 step: int = 0):
        progress = progress or {"train_seconds": 0.0, "terms": {}, "memory": None, "resumes": 0}
        self.live = live
        if live is not None:
            rewind_live(live, step)
        self.memory = StepMemory(device, progress["memory"])
        self.started = time.time() - progress["train_seconds"]
        self.terms = dict(progress["terms"])  # the last logged loss terms, as floats
        self.resumes = progress["resumes"]

    def seconds(self) -> float:
        """Training time so far, the runs before a resume included."""
        return time.time() - self.started

    def progress(self) -> dict:
        """What a checkpoint keeps of the log (the `progress` of the RunLog of a resume)."""
        return {"train_seconds": self.seconds(), "terms": self.terms,
                "memory": self.memory.state(), "resumes": self.resumes}

    def log_step(self, step: int, *, logged: bool, lr: float, phase_index: int | None = None,
                 evaluate=None) -> None:
        """The dvclive rows of training step `step` (none without dvclive). When `logged`: the
        loss terms, the lr and the phase index (None: a one-phase run), then a sync.
        `evaluate() -> {name: float}` (None: no evaluation at this step): eval/<name>."""
        live = self.live
        if live is None:
            return
        live.step = step
        if logged:
            for name, value in self.terms.items():
                live.log_metric(f"train/{name}", value)
            live.log_metric("train/lr", lr)
            if phase_index is not None:
                live.log_metric("train/phase", phase_index)
        if evaluate is not None:
            for name, value in evaluate().items():
                live.log_metric(f"eval/{name}", value)
        if logged:
            live.sync()
