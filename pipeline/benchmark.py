"""Side-by-side training-step benchmark of the rows' losses (Pix2PixHD, MExGAN, A-MExGAN, and the
dataset's TwoSM rows; or GL and GL+A-MEx for inpainting) in one process: median step time and,
on CUDA, peak / average allocated memory (paper Table 4 "Mem")."""
from __future__ import annotations

import statistics
import tempfile
import time

import torch

from pipeline import trainer
from pipeline.config import Params
from pipeline.datasets import get_spec
from pipeline.inputs import EditBox, EditTask, condition_channels
from pipeline.networks import VGG19Features, count_parameters
from pipeline.preparation import box_rows
from pipeline.inpainting import InpaintingTask, mean_colour
from pipeline.rows import build_generator, build_gl, build_losses, build_twosm
from pipeline.twosm import TwoStreamTask
from pipeline.synthetic import generate_split


class TimedTask:
    """Wraps a task; records the time between consecutive batches (= one training step)."""

    def __init__(self, task, steps: int):
        self.task, self.steps, self.stamps = task, steps, []

    def __len__(self):
        return self.steps

    def epoch(self, epoch, device):
        produced = 0
        while produced < self.steps:
            for batch in self.task.epoch(epoch + produced, device):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                self.stamps.append(time.perf_counter())
                yield batch
                produced += 1
                if produced == self.steps:
                    break

    def step_seconds(self, warmup: int = 2) -> list:
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        return gaps[warmup:] if len(gaps) > warmup else gaps


def benchmark(params: Params, dataset: str, losses=("pix2pixhd", "mex", "amex"), *,
              width: int, height: int, steps: int = 10, images: int = 8,
              progress: bool = False) -> dict:
    """Train each loss for `steps` steps on synthetic maps of the given size, same seed, and
    report median seconds per step (+ CUDA memory). q is params.q (or its dataset override).
    Every TwoSM row of the dataset in params (twosm_rows) is timed too, under its row name."""
    device = trainer.pick_device(params.train.device)
    spec = get_spec(dataset)
    threshold = params.datasets[dataset].size_threshold
    split = generate_split(dataset, "train", images, height, width, params.data.seed)
    boxes = {}
    for row in box_rows("train", split, spec, threshold):
        boxes.setdefault(row[1], []).append(EditBox(row[1], row[2], tuple(row[3:7])))
    q = params.q_overrides.get(dataset, params.q)
    channels = condition_channels(spec)
    results = {"device": str(device), "dataset": dataset, "width": width, "height": height,
               "steps": steps, "q": q, "alpha": params.alpha, "beta": params.beta,
               "model": {"ngf": params.model.ngf, "ndf": params.model.ndf,
                         "n_downsampling": params.model.n_downsampling,
                         "n_blocks": params.model.n_blocks}, "rows": {}}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    twosm_rows = [name for name, row in params.twosm_rows.items() if row.dataset == dataset]
    for loss in list(losses) + twosm_rows:
        trainer.make_deterministic(params.train.seed, params.train.cpu_threads,
                                params.train.deterministic)
        if loss in twosm_rows:
            generator, plugins = build_twosm(loss, params)
            task = TimedTask(TwoStreamTask(split, spec, boxes, generator.observation,
                                           batch_size=params.twosm.batch_size,
                                           flip=params.train.flip, seed=params.train.seed),
                             steps)
        else:
            task = TimedTask(EditTask(split, spec, boxes, batch_size=params.train.batch_size,
                                      flip=params.train.flip, seed=params.train.seed), steps)
            generator = build_generator(channels, params)
            plugins = build_losses(loss, channels, params, None if loss == "pix2pixhd" else q,
                                   VGG19Features(params.loss.vgg_weights_path))
        if device.type == "cuda":
            torch.cuda.empty_cache()
        with tempfile.TemporaryDirectory() as out_dir:
            summary = trainer.train(generator=generator, losses=plugins, task=task, epochs=1,
                                    lr=params.train.lr, betas=(params.train.beta1,
                                                               params.train.beta2),
                                    device=device, out_dir=out_dir, progress=progress,
                                    desc=f"bench {loss}")
        step_times = task.step_seconds()
        results["rows"][loss] = {
            "median_step_seconds": statistics.median(step_times),
            "generator_parameters": count_parameters(generator),
            "discriminator_parameters": sum(count_parameters(p) for p in plugins)
            - (count_parameters(plugins[0].vgg) if hasattr(plugins[0], "vgg") else 0),
            **{k: v for k, v in summary.items() if k.startswith("mem_gpu")}}
    base = results["rows"].get("pix2pixhd", {}).get("median_step_seconds")
    if base:
        for values in results["rows"].values():
            values["step_time_vs_pix2pixhd"] = values["median_step_seconds"] / base
    return results


def benchmark_inpainting(params: Params, *, width: int, height: int, steps: int = 10,
                         images: int = 8, progress: bool = False) -> dict:
    """GL and GL+A-MEx (params.inpainting) side by side on synthetic facades: median seconds of
    a joint-phase step (completion network, context discriminator and, for GL+A-MEx, the A-MEx
    discriminator all step; the costliest of GL's three phases) and, on CUDA, memory."""
    device = trainer.pick_device(params.train.device)
    ip = params.inpainting
    photos = generate_split(ip.dataset, "train", images, height, width, params.data.seed).photos
    results = {"device": str(device), "dataset": ip.dataset, "width": width, "height": height,
               "steps": steps, "batch_size": ip.batch_size, "q": ip.q, "alpha": ip.alpha,
               "beta": ip.beta, "phase": "joint",
               "model": {"ngf": ip.ngf, "ndf": ip.ndf, "dilations": list(ip.dilations),
                         "global_layers": ip.global_layers, "local_layers": ip.local_layers},
               "rows": {}}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
    for loss in ("gl", "gl_amex"):
        trainer.make_deterministic(params.train.seed, params.train.cpu_threads,
                                params.train.deterministic)
        generator, plugins = build_gl(loss, params, height, width)
        task = TimedTask(InpaintingTask(photos, fill=mean_colour(photos),
                                        hole=(ip.hole_min, ip.hole_max),
                                        batch_size=ip.batch_size, flip=ip.flip,
                                        seed=params.train.seed), steps)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        with tempfile.TemporaryDirectory() as out_dir:
            summary = trainer.train(generator=generator, losses=plugins, task=task, epochs=1,
                                    lr=ip.lr, betas=(ip.beta1, ip.beta2), device=device,
                                    out_dir=out_dir, progress=progress, desc=f"bench {loss}")
        results["rows"][loss] = {
            "median_step_seconds": statistics.median(task.step_seconds()),
            "generator_parameters": count_parameters(generator),
            "discriminator_parameters": sum(count_parameters(p) for p in plugins),
            **{k: v for k, v in summary.items() if k.startswith("mem_gpu")}}
    base = results["rows"]["gl"]["median_step_seconds"]
    for values in results["rows"].values():
        values["step_time_vs_gl"] = values["median_step_seconds"] / base
    return results
