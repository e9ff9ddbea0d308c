"""Side-by-side training-step benchmark of the rows' losses (Pix2PixHD, MExGAN, A-MExGAN, and the
dataset's TwoSM rows; or GL and GL+A-MEx for inpainting), each row in a fresh process: median
step time, per-step peak memory (pipeline.training.runlog.StepMemory: the paper's Table 4 "Mem" on
CUDA, peak RSS on CPU) and where the step's time goes (data, generator forward / backward,
each discriminator and the VGG19 forward, optimisers). Optionally NVIDIA's reference pix2pixHD
networks (a checkout of NVlabs' repository, not vendored) are timed beside ours."""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import importlib.util
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from unittest import mock

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.training import trainer
from pipeline.config import InpaintingRow, Params, Row
from pipeline.data.datasets import get_spec
from pipeline.data.inputs import EditBox, EditTask, condition_channels
from pipeline.models.networks import (CanvasDiscriminators, MultiscaleDiscriminator,
                               PatchDiscriminator, VGG19Features, count_parameters)
from pipeline.data.preparation import box_rows
from pipeline.kinds import INPAINTING, STRUCTURE, TWOSM
from pipeline.training.runlog import StepMemory
from pipeline.training.runs import acceleration
from pipeline.data.synthetic import generate_split

WARMUP = 2  # steps left out of the medians and the breakdown (allocator and kernel warm-up)
REFERENCE = "NVIDIA pix2pixHD"


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


def _rss_bytes() -> float:
    with open("/proc/self/status") as f:
        return next(float(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _configure_process(params: Params) -> None:
    """A benchmark process's CPU settings: the params' portable mode and threads (unless the
    process configured itself already: a spawned child of a stage does, from its command line
    and MEXGAN_PORTABLE)."""
    from pipeline.training import platform
    if not platform.is_configured():
        platform.configure(portable=params.train.portable, threads=params.train.cpu_threads)


def _process_record() -> dict:
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


def _train_boxes(params: Params, dataset: str, split, spec) -> dict:
    """image name -> its eligible EditBoxes (the dataset's size threshold and box rule)."""
    boxes = {}
    for row in box_rows("train", split, spec, params.datasets[dataset].size_threshold,
                        params.data.box_rule):
        boxes.setdefault(row[1], []).append(EditBox(row[1], row[2], tuple(row[3:7])))
    return boxes


def _time_training(build, params: Params, device: torch.device, steps: int, lr, betas,
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
        rss_before = _rss_bytes() if device.type == "cpu" else None
        with tempfile.TemporaryDirectory() as out_dir:
            summary = trainer.train(generator=generator, losses=losses, task=timed, epochs=1,
                                    lr=lr, betas=betas, device=device, out_dir=out_dir,
                                    progress=False, acceleration=accel, timer=timer,
                                    phases=phases, log_every=params.train.log_every,
                                    data_workers=params.train.data_workers)
        if not result:
            result = _measured_steps(
                timer, {k: v for k, v in summary.items() if k.startswith("mem_")}, rss_before)
            result["generator_parameters"] = count_parameters(generator)
            result["discriminator_parameters"] = sum(
                p.numel() for p in trainer.discriminator_parameters(losses))
        if with_breakdown:
            measured = len(timer.step_seconds())
            result["breakdown_ms"] = {name: 1000 * seconds / measured
                                      for name, seconds in sorted(timer.seconds.items(),
                                                                  key=lambda kv: -kv[1])}
    return {**result, **_process_record()}


def _measured_steps(timer: StepTimer, memory: dict, rss_before: float | None) -> dict:
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


def _benchmark_row(params: Params, dataset: str, loss: str, width: int, height: int,
                   steps: int, images: int, count_flops: bool = True) -> dict:
    _configure_process(params)
    if loss == CANVAS_ROW:
        params, loss = with_crop_canvas(params), "mex"
        print(f"    ({CANVAS_ROW}: train.mex_crop_canvas = "
              f"{params.train.mex_crop_canvas})", file=sys.stderr, flush=True)
    device = trainer.pick_device(params.train.device)
    spec = get_spec(dataset)
    split = generate_split(dataset, "train", images, height, width, params.data.seed)
    boxes = _train_boxes(params, dataset, split, spec)
    kind, row = benchmark_row(params, dataset, loss)
    t = params.train

    def build():
        return kind.build(params, row, split, boxes, t.seed)
    return _time_training(build, params, device, steps, t.lr, (t.beta1, t.beta2),
                          acceleration(t), count_flops=count_flops)


def benchmark_row(params: Params, dataset: str, loss: str):
    """(kind, Row) a benchmark times: a TwoSM row of the params by name, else a structure row
    of `dataset` with loss `loss` (pix2pixhd, mex, amex) and the dataset's q (its
    q_overrides entry, else q), built by the same kind code as the pipeline's rows."""
    if loss in params.twosm_rows:
        return TWOSM, params.twosm_rows[loss]
    q_from = f"q_overrides.{dataset}" if dataset in params.q_overrides else "q"
    return STRUCTURE, Row(dataset=dataset, loss=loss,
                          q_from="" if loss == "pix2pixhd" else q_from)


CANVAS_ROW = "mex_canvas"   # MExGAN with its q+1 D_j as one grouped network (crop canvas)
CANVAS_MULTIPLE = 32        # its canvas multiple when the params have none
BASE_ROWS = ("pix2pixhd", "mex", "amex")


def with_crop_canvas(params: Params) -> Params:
    """The params with MEx's crop canvas on: their train.mex_crop_canvas, else CANVAS_MULTIPLE."""
    return dataclasses.replace(params, train=dataclasses.replace(
        params.train, mex_crop_canvas=params.train.mex_crop_canvas or CANVAS_MULTIPLE))


def benchmark_rows(params: Params, dataset: str) -> list:
    """Every row a benchmark of `dataset` can time: the three losses, MExGAN on the crop
    canvas and the dataset's TwoSM rows."""
    return list(BASE_ROWS) + [CANVAS_ROW] + [name for name, row in params.twosm_rows.items()
                              if row.dataset == dataset]


def benchmark(params: Params, dataset: str, losses=None, *,
              width: int, height: int, steps: int = 10, images: int = 8,
              progress: bool = False, reference: str | None = None,
              portable: bool | None = None, rounds: int = 1) -> dict:
    """Train each loss for `steps` steps (the first WARMUP left out) on synthetic maps of the
    given size, same seed, each in a fresh process, and report the median seconds per step,
    per-step peak memory, GFLOP per step, the breakdown and the ratios to our Pix2PixHD. q is
    params.q (or its dataset override). `losses`: names of benchmark_rows (default: all of
    them). `reference`: a pix2pixHD checkout whose networks are timed beside ours (same sizes).
    `portable`: the CPU kernels of the row processes (see cpu_kernels); the result records the
    mode they ran in. `rounds`: the rows (and the reference) take turns that many times (see
    run_interleaved); the median is over all rounds' steps."""
    device = trainer.pick_device(params.train.device)
    q = params.q_of(benchmark_row(params, dataset, "mex")[1])
    results = {"device": str(device), "dataset": dataset, "width": width, "height": height,
               "steps": steps, "warmup_steps": WARMUP, "rounds": rounds, "q": q,
               "alpha": params.alpha,
               "beta": params.beta, "cpu_threads": params.train.cpu_threads,
               "torch": torch.__version__,
               "acceleration": dataclasses.asdict(acceleration(params.train)),
               "model": {"ngf": params.model.ngf, "ndf": params.model.ndf,
                         "n_downsampling": params.model.n_downsampling,
                         "n_blocks": params.model.n_blocks}, "rows": {}}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    known = benchmark_rows(params, dataset)
    unknown = sorted(set(losses or ()) - set(known))
    if unknown:
        raise ValueError(f"benchmark row {unknown[0]!r}: not one of {', '.join(known)}")
    jobs = {loss: (_benchmark_row, (params, dataset, loss, width, height, steps, images))
            for loss in losses or known}
    if reference:
        jobs[REFERENCE] = (reference_pix2pixhd,
                           (reference, params, dataset, width, height, steps, images))
    with cpu_kernels(portable):
        measured = run_interleaved(jobs, rounds, f"{dataset} {width}x{height}"
                                   if progress else None)
    results["rows"] = {loss: measured[loss] for loss in losses or known}
    if reference:
        results["reference_pix2pixhd"] = measured[REFERENCE]
    first = next(iter(results["rows"].values()))
    results["portable"], results["isa_used"] = first["portable"], first["isa_used"]
    base = results["rows"].get("pix2pixhd")
    if base:
        for values in results["rows"].values():
            values.update(_ratios(values, base, "pix2pixhd"))
        if reference:
            results.update({f"pix2pixhd_{key}": value
                            for key, value in _ratios(base, results["reference_pix2pixhd"],
                                                      "reference").items()})
    return results


def _ratios(values: dict, base: dict, name: str) -> dict:
    """A row's step time (best and median step) and FLOPs over those of `base`."""
    return {f"best_step_vs_{name}": values["best_step_seconds"] / base["best_step_seconds"],
            f"median_step_vs_{name}": values["median_step_seconds"] / base["median_step_seconds"],
            f"flops_vs_{name}": values["gflop_per_step"] / base["gflop_per_step"]}


#---------------------------------------------------------------------------------------------
# NVIDIA's pix2pixHD networks, timed with their training step (not vendored: a checkout)


def _load_reference_networks(checkout: str):
    path = os.path.join(checkout, "models", "networks.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: --reference must be a checkout of "
                                "https://github.com/NVIDIA/pix2pixHD")
    spec = importlib.util.spec_from_file_location("reference_pix2pixhd_networks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ReferenceStep(nn.Module):
    """pix2pixHD's Pix2PixHDModel.forward + its train.py updates, on its own networks: one
    generator pass, D on (fake.detach(), real, fake), LSGAN, feature matching and VGG loss at
    λ_feat = 10 with its weights, then G's and D's Adam steps (its D also gets gradients from
    the generator loss, which its optimiser clears)."""

    def __init__(self, networks, in_channels: int, m, device):
        super().__init__()
        norm = networks.get_norm_layer("instance")
        self.netG = networks.GlobalGenerator(in_channels, 3, m.ngf, m.n_downsampling,
                                             m.n_blocks, norm)
        self.netD = networks.MultiscaleDiscriminator(in_channels + 3, m.ndf, m.n_layers_d, norm,
                                                     False, m.num_d, True)
        self.netG.apply(networks.weights_init)
        self.netD.apply(networks.weights_init)
        tensor = torch.cuda.FloatTensor if device.type == "cuda" else torch.FloatTensor
        self.gan = networks.GANLoss(use_lsgan=True, tensor=tensor)
        # random-init VGG19 (no weights can be downloaded; the same cost)
        import torchvision
        vgg19 = torchvision.models.vgg19
        with mock.patch.object(torchvision.models, "vgg19",
                               lambda pretrained=False, **_: vgg19(weights=None)):
            self.vgg = networks.Vgg19()
        self.vgg_weights = [1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0]
        self.num_d, self.n_layers = m.num_d, m.n_layers_d

    def step(self, label, real, opt_g, opt_d):
        fake = self.netG(label)
        pred_fake_pool = self.netD(torch.cat((label, fake.detach()), dim=1))
        loss_d_fake = self.gan(pred_fake_pool, False)
        pred_real = self.netD(torch.cat((label, real.detach()), dim=1))
        loss_d_real = self.gan(pred_real, True)
        pred_fake = self.netD(torch.cat((label, fake), dim=1))
        loss_g_gan = self.gan(pred_fake, True)
        feat_weights, d_weights = 4.0 / (self.n_layers + 1), 1.0 / self.num_d
        loss_g_feat = sum(d_weights * feat_weights * 10.0
                          * nn.functional.l1_loss(pred_fake[i][j], pred_real[i][j].detach())
                          for i in range(self.num_d) for j in range(len(pred_fake[i]) - 1))
        x_vgg, y_vgg = self.vgg(fake), self.vgg(real)
        loss_g_vgg = 10.0 * sum(w * nn.functional.l1_loss(x, y.detach())
                                for w, x, y in zip(self.vgg_weights, x_vgg, y_vgg))
        loss_d = (loss_d_fake + loss_d_real) * 0.5
        loss_g = loss_g_gan + loss_g_feat + loss_g_vgg
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()


def reference_pix2pixhd(checkout: str, params: Params, dataset: str, width: int, height: int,
                        steps: int, images: int, count_flops: bool = True) -> dict:
    """Median step seconds and peak memory of NVIDIA's pix2pixHD networks and training step at
    our model sizes, on the same synthetic maps (our conditioning, batch 1)."""
    _configure_process(params)
    device = trainer.pick_device(params.train.device)
    networks = _load_reference_networks(checkout)
    trainer.make_deterministic(params.train.seed, params.train.cpu_threads,
                               params.train.deterministic)
    spec = get_spec(dataset)
    split = generate_split(dataset, "train", images, height, width, params.data.seed)
    boxes = _train_boxes(params, dataset, split, spec)
    task = TimedTask(EditTask(split, spec, boxes, batch_size=1, flip=True, seed=0), steps)
    model = _ReferenceStep(networks, condition_channels(spec), params.model, device).to(device)
    t = params.train
    opt_g = torch.optim.Adam(model.netG.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(model.netD.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
    memory = StepMemory(device)
    rss_before = _rss_bytes() if device.type == "cpu" else None
    clock = StepTimer(device, parts=False, count_flops=count_flops)
    for batch in task.epoch(0, device):
        memory.start_step()
        model.step(batch.condition, batch.target, opt_g, opt_d)
        memory.end_step()
        clock.step_done()
    return {**_measured_steps(clock, memory.summary(), rss_before),
            "generator_parameters": count_parameters(model.netG),
            "discriminator_parameters": count_parameters(model.netD),
            "source": os.path.abspath(checkout), **_process_record()}


def _benchmark_gl_row(params: Params, loss: str, width: int, height: int, steps: int,
                      images: int, count_flops: bool = True) -> dict:
    _configure_process(params)
    device = trainer.pick_device(params.train.device)
    ip = params.inpainting
    photos = generate_split(ip.dataset, "train", images, height, width, params.data.seed).photos

    def build():
        return INPAINTING.build(params, InpaintingRow(loss), photos, params.train.seed)
    return _time_training(build, params, device, steps, ip.lr, (ip.beta1, ip.beta2),
                          acceleration(params.train), count_flops=count_flops)


def benchmark_inpainting(params: Params, *, width: int, height: int, steps: int = 10,
                         images: int = 8, progress: bool = False,
                         portable: bool | None = None, rounds: int = 1) -> dict:
    """GL and GL+A-MEx (params.inpainting) side by side on synthetic facades, each in a fresh
    process: median seconds of a joint-phase step (completion network, context discriminator
    and, for GL+A-MEx, the A-MEx discriminator all step; the costliest of GL's three phases),
    per-step peak memory, GFLOP per step and the breakdown. `portable`, `rounds`: as for
    benchmark."""
    device = trainer.pick_device(params.train.device)
    ip = params.inpainting
    results = {"device": str(device), "dataset": ip.dataset, "width": width, "height": height,
               "steps": steps, "warmup_steps": WARMUP, "rounds": rounds,
               "batch_size": ip.batch_size, "q": ip.q,
               "alpha": ip.alpha, "beta": ip.beta, "phase": "joint",
               "torch": torch.__version__,
               "model": {"ngf": ip.ngf, "ndf": ip.ndf, "dilations": list(ip.dilations),
                         "global_layers": ip.global_layers, "local_layers": ip.local_layers},
               "rows": {}}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    jobs = {loss: (_benchmark_gl_row, (params, loss, width, height, steps, images))
            for loss in ("gl", "gl_amex")}
    with cpu_kernels(portable):
        results["rows"] = run_interleaved(jobs, rounds, f"{ip.dataset} {width}x{height}"
                                          if progress else None)
    base = results["rows"]["gl"]
    for values in results["rows"].values():
        values.update(_ratios(values, base, "gl"))
    results["portable"], results["isa_used"] = base["portable"], base["isa_used"]
    return results


#---------------------------------------------------------------------------------------------
# Paper sizes and the Markdown report


def paper_size(params: Params) -> Params:
    """The paper's networks (ngf/ndf 64, 4 downsamplings, 9 blocks), α = β = 5 and the TwoSM
    paper batch / crops; the map size is the caller's (PAPER_SETTINGS)."""
    return dataclasses.replace(
        params, alpha=5, beta=5,
        model=dataclasses.replace(params.model, ngf=64, ndf=64, n_downsampling=4, n_blocks=9),
        twosm=dataclasses.replace(params.twosm, crop_size=256, batch_size=16))


def inpainting_paper_size(params: Params) -> Params:
    """GL's widths, the paper's q = α = β = 4 and the authors' batch 64."""
    return dataclasses.replace(params, inpainting=dataclasses.replace(
        params.inpainting, ngf=64, ndf=64, dilations=(2, 4, 8, 16), global_layers=6,
        local_layers=5, q=4, alpha=4, beta=4, batch_size=64))


PAPER_TRAIN_IMAGES = {"cityscapes": 2975}  # the paper's training split (batch 1, 200 epochs)
TARGETS = {"mex": 1.25, "amex": 1.35, CANVAS_ROW: 1.25}  # step time vs our Pix2PixHD (issue 14)
REFERENCE_TARGET = 0.8                 # our Pix2PixHD step vs NVIDIA's, same run


def _measured(result: dict) -> str:
    rounds = result.get("rounds", 1)
    steps = f"{result['steps'] - result['warmup_steps']} steps after {result['warmup_steps']} " \
        "warm-up"
    return f"{steps} in each of {rounds} rounds (the rows taking turns)" if rounds > 1 else steps


def _number(value, spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)


def _memory_cells(values: dict) -> str:
    for key in ("mem_gpu_step_peak", "mem_cpu_step_peak_rss"):
        if f"{key}_mean_gb" in values:
            return f"{values[f'{key}_mean_gb']:.2f} / {values[f'{key}_max_gb']:.2f}"
    return f"{values['mem_cpu_peak_rss_gb']:.2f} (process peak)" \
        if "mem_cpu_peak_rss_gb" in values else "–"


def bench_markdown(results: dict) -> str:
    """The benchmark as Markdown: per size, a table of rows (step time, ratios, per-step peak
    memory), the targets met or not, and the breakdown of each row's step."""
    lines = ["# Training-step benchmark (`make bench`)", ""]
    for size, result in results["sizes"].items():
        rows = result["rows"]
        base_name = next((name for name in ("pix2pixhd", "gl") if name in rows), None)
        gpu = result.get("gpu")
        memory = "GPU allocator, per-step peak" if gpu else "process RSS, per-step peak"
        kernels = "portable" if result.get("portable") else "native"
        lines += [f"## {result['dataset']} {result['width']}×{result['height']} ({size} size)",
                  "",
                  f"Device: {gpu or 'CPU'} ({result['device']}), torch {result['torch']}, "
                  f"{result.get('cpu_threads', '?')} CPU threads, {kernels} CPU kernels "
                  f"({result.get('isa_used', '?')}), model {result['model']}, "
                  f"acceleration {result.get('acceleration', {})}; median of "
                  f"{_measured(result)}, each row in a fresh process. GFLOP: one "
                  "step's forward and backward passes, torch's FLOP counter.", "",
                  f"| row | ms/step, best | median | × {base_name or '–'} (best / median) | "
                  f"GFLOP/step | × FLOPs | memory GB, mean / max ({memory}) | RSS growth GB | "
                  "G params | D params |", "|---|---|---|---|---|---|---|---|---|---|"]
        reference = result.get("reference_pix2pixhd")
        base = rows.get(base_name, {})
        named = list(rows.items()) + ([("NVIDIA pix2pixHD (reference)", reference)]
                                      if reference else [])
        for name, values in named:
            ratios = _ratios(values, base, "base") if base else {}
            time_ratios = f"{ratios['best_step_vs_base']:.2f} / " \
                f"{ratios['median_step_vs_base']:.2f}" if ratios else ""
            lines.append(f"| {name} | {values['best_step_seconds'] * 1000:.1f} | "
                         f"{values['median_step_seconds'] * 1000:.1f} | {time_ratios} | "
                         f"{values['gflop_per_step']:.1f} | "
                         f"{_number(ratios.get('flops_vs_base'))} | {_memory_cells(values)} | "
                         f"{_number(values.get('rss_growth_gb'))} | "
                         f"{values['generator_parameters']:,} | "
                         f"{values['discriminator_parameters']:,} |")
        lines += ["", "Targets (on the best step of each row: interference from other work on a "
                  "shared machine only adds time):"]
        if reference:
            ratio = result["pix2pixhd_best_step_vs_reference"]
            verdict = ('met' if ratio <= REFERENCE_TARGET else 'NOT met') if size == "paper" \
                else "the target is for the paper size"
            lines.append(f"- our Pix2PixHD step / NVIDIA's = {ratio:.2f} (target ≤ "
                         f"{REFERENCE_TARGET}): {verdict}; median steps "
                         f"{result['pix2pixhd_median_step_vs_reference']:.2f}, FLOPs "
                         f"{result['pix2pixhd_flops_vs_reference']:.2f}×")
        elif size == "paper":
            lines.append("- our Pix2PixHD vs NVIDIA's: not measured (give --reference, a "
                         "pix2pixHD checkout)")
        for name, target in TARGETS.items():
            if name in rows and base_name == "pix2pixhd":
                ratio = rows[name]["best_step_vs_pix2pixhd"]
                lines.append(f"- {name} / pix2pixhd = {ratio:.2f} (target ≤ {target}): "
                             f"{'met' if ratio <= target else 'NOT met'}; median steps "
                             f"{rows[name]['median_step_vs_pix2pixhd']:.2f}, FLOPs "
                             f"{rows[name]['flops_vs_pix2pixhd']:.2f}×")
        if gpu and {"mex", "amex"} <= rows.keys():
            mex = rows["mex"]["mem_gpu_step_peak_max_gb"]
            amex = rows["amex"]["mem_gpu_step_peak_max_gb"]
            lines.append(f"- per-step peak memory MEx {mex:.2f} GB < A-MEx {amex:.2f} GB "
                         f"(paper Table 4: 4.43 < 4.54): {'yes' if mex < amex else 'no'}")
        images = PAPER_TRAIN_IMAGES.get(result["dataset"])
        if gpu and images and size == "paper":
            for name in ("pix2pixhd", "mex", "amex"):
                if name in rows:
                    hours = rows[name]["median_step_seconds"] * images * 200 / 3600
                    lines.append(f"- estimated {name} training, 200 epochs × {images:,} "
                                 f"{result['dataset']} images at batch 1: {hours:.1f} h")
        parts = sorted({part for values in rows.values()
                        for part in values.get("breakdown_ms", {})},
                       key=lambda part: -max(v.get("breakdown_ms", {}).get(part, 0)
                                             for v in rows.values()))
        if parts:
            lines += ["", "Where the step's time goes (ms per step; a module's forward is "
                      "counted apart from the part that calls it; backward passes are "
                      "G_backward / D_backward):", "",
                      "| part | " + " | ".join(rows) + " |",
                      "|---|" + "---|" * len(rows)]
            for part in parts:
                lines.append(f"| {part} | " + " | ".join(
                    f"{values.get('breakdown_ms', {}).get(part, 0):.1f}"
                    for values in rows.values()) + " |")
        lines.append("")
    return "\n".join(lines)
