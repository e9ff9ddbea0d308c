"""Side-by-side training-step benchmark of the rows' losses (Pix2PixHD, MExGAN, A-MExGAN, and the
dataset's TwoSM rows; or GL and GL+A-MEx for inpainting), each row in a fresh process: median
step time, per-step peak memory (pipeline.training.runlog.StepMemory: the paper's Table 4 "Mem" on
CUDA, peak RSS on CPU) and where the step's time goes (data, generator forward / backward,
each discriminator and the VGG19 forward, optimisers). Optionally NVIDIA's reference pix2pixHD
networks (a checkout of NVlabs' repository, not vendored) are timed beside ours.

The timing itself is pipeline.apps.step_timing's, NVIDIA's networks
pipeline.apps.reference_pix2pixhd's, the paper sizes and the report pipeline.apps.bench_report's."""
from __future__ import annotations

import dataclasses
import sys

import torch

from pipeline.training import trainer
from pipeline.config.sections import InpaintingRow, Params, Row
from pipeline.data.sets import get_spec
from pipeline.kinds import INPAINTING, STRUCTURE, TWOSM
from pipeline.config.losses import expands
from pipeline.training.runs import acceleration
from pipeline.data.synthetic import generate_split
from pipeline.apps.reference_pix2pixhd import reference_pix2pixhd
from pipeline.apps.step_timing import (WARMUP, configure_process, cpu_kernels, run_interleaved,
                                       time_training, train_boxes)

REFERENCE = "NVIDIA pix2pixHD"


def _benchmark_row(params: Params, dataset: str, loss: str, width: int, height: int,
                   steps: int, images: int, count_flops: bool = True) -> dict:
    configure_process(params)
    if loss == CANVAS_ROW:
        params, loss = with_crop_canvas(params), "mex"
        print(f"    ({CANVAS_ROW}: train.mex_crop_canvas = "
              f"{params.train.mex_crop_canvas})", file=sys.stderr, flush=True)
    device = trainer.pick_device(params.train.device)
    spec = get_spec(dataset)
    split = generate_split(dataset, "train", images, height, width, params.data.seed)
    boxes = train_boxes(params, dataset, split, spec)
    kind, row = benchmark_row(params, dataset, loss)
    t = params.train

    def build():
        return kind.build(params, row, split, boxes, t.seed)
    return time_training(build, params, device, steps, t.lr, (t.beta1, t.beta2),
                          acceleration(t), count_flops=count_flops)


def benchmark_row(params: Params, dataset: str, loss: str):
    """(kind, Row) a benchmark times: a TwoSM row of the params by name, else a structure row
    of `dataset` with loss `loss` (pix2pixhd, mex, amex) and the dataset's q (its
    q_overrides entry, else q), built by the same kind code as the pipeline's rows."""
    if loss in TWOSM.rows(params):
        return TWOSM, TWOSM.rows(params)[loss]
    q_from = f"q_overrides.{dataset}" if dataset in params.q_overrides else "q"
    return STRUCTURE, Row(dataset=dataset, loss=loss, q_from=q_from if expands(loss) else "")


CANVAS_ROW = "mex_canvas"   # MExGAN with its q+1 D_j as one grouped network (crop canvas)


CANVAS_MULTIPLE = 32        # its canvas multiple when the params have none


BASE_ROWS = STRUCTURE.losses   # one structure row per loss


def with_crop_canvas(params: Params) -> Params:
    """The params with MEx's crop canvas on: their train.mex_crop_canvas, else CANVAS_MULTIPLE."""
    return dataclasses.replace(params, train=dataclasses.replace(
        params.train, mex_crop_canvas=params.train.mex_crop_canvas or CANVAS_MULTIPLE))


def benchmark_rows(params: Params, dataset: str) -> list:
    """Every row a benchmark of `dataset` can time: the three losses, MExGAN on the crop
    canvas and the dataset's TwoSM rows."""
    return list(BASE_ROWS) + [CANVAS_ROW] + [name for name, row in TWOSM.rows(params).items()
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
            values.update(step_ratios(values, base, "pix2pixhd"))
        if reference:
            results.update({f"pix2pixhd_{key}": value
                            for key, value in step_ratios(base, results["reference_pix2pixhd"],
                                                      "reference").items()})
    return results


def step_ratios(values: dict, base: dict, name: str) -> dict:
    """A row's step time (best and median step) and FLOPs over those of `base`."""
    return {f"best_step_vs_{name}": values["best_step_seconds"] / base["best_step_seconds"],
            f"median_step_vs_{name}": values["median_step_seconds"] / base["median_step_seconds"],
            f"flops_vs_{name}": values["gflop_per_step"] / base["gflop_per_step"]}


def _benchmark_gl_row(params: Params, loss: str, width: int, height: int, steps: int,
                      images: int, count_flops: bool = True) -> dict:
    configure_process(params)
    device = trainer.pick_device(params.train.device)
    ip = params.inpainting
    photos = generate_split(ip.dataset, "train", images, height, width, params.data.seed).photos

    def build():
        return INPAINTING.build(params, InpaintingRow(loss), photos, params.train.seed)
    return time_training(build, params, device, steps, ip.lr, (ip.beta1, ip.beta2),
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
            for loss in INPAINTING.losses}
    with cpu_kernels(portable):
        results["rows"] = run_interleaved(jobs, rounds, f"{ip.dataset} {width}x{height}"
                                          if progress else None)
    base = results["rows"]["gl"]
    for values in results["rows"].values():
        values.update(step_ratios(values, base, "gl"))
    results["portable"], results["isa_used"] = base["portable"], base["isa_used"]
    return results
