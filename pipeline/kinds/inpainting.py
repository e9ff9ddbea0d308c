"""Inpainting rows (Table 3, params `inpainting_rows`): GL's completion network (Iizuka et
al. 2017) fills a hole of a facade photo; loss gl (L_rec + α·GL's global + local context
discriminator) | gl_amex (+ α·λ4·L_A-MEx: reading `ours`, the A-MEx PatchGAN beside GL's D;
reading `authors`, GL's local trunk shared over the expanded-mask images); L_rec divided by the
hole's or the image's pixels (row key rec_divisor). Trained in GL's
three phases; scored by SSIM / L1 over the hole and FID on the seed-679 holes of the test
photos (pipeline.evaluation.evaluation.InpaintingTestSet)."""
from __future__ import annotations

import os

from pipeline.config.loading import to_dict
from pipeline.config.sections import Params
from pipeline.training.distributed import Context
from pipeline.evaluation.evaluation import HeldBackHoles, InpaintingTestSet
from pipeline.data.datasets import read_split
from pipeline.models.inpainting import (ADVERSARIAL_PLUGINS, CompletionNetwork,
                                        ExpandedContextLoss, GlobalLocalLoss, InpaintingTask,
                                        ReconstructionLoss, local_patch_size, mean_colour)
from pipeline.kinds.base import RowKind
from pipeline.models.losses import AMExLoss
from pipeline.training.runs import Run, files_md5
from pipeline.training.trainer import Phase, plugin_name

# The train keys that shape an inpainting run (the rest of `train` is the segmentation rows').
TRAIN_KEYS = ("cpu_threads", "device", "processes", "portable", "log_every", "eval_every",
              "eval_boxes")
DATA_FILES = ("train.h5", "test.h5", "test_masks.csv")


def gl_phases(completion_steps: int, discriminator_steps: int, plugins) -> tuple:
    """GL's three training phases over the plug-ins present (by name): the completion network
    with L_rec alone, then every discriminator alone, then all jointly. A phase of 0 steps is
    left out."""
    names = [plugin_name(p) for p in plugins]
    adversarial = tuple(n for n in names if n in ADVERSARIAL_PLUGINS)
    phases = []
    if completion_steps:
        phases.append(Phase("completion", completion_steps, generator=("reconstruction",),
                            discriminator=()))
    if discriminator_steps:
        phases.append(Phase("discriminator", discriminator_steps, generator=(),
                            discriminator=adversarial))
    phases.append(Phase("joint"))
    return tuple(phases)


def build_gl(loss: str, params: Params, height: int, width: int, reading: str = "ours",
             rec_divisor: str = "hole"):
    """(completion network, loss plug-ins) of a Table 3 row: GL = L_rec (its hole sum divided
    by `rec_divisor`: hole | image) + α·GL's adversarial term (global + local context
    discriminator); gl_amex adds α·λ4·L_A-MEx, the same AMExLoss plug-in as the segmentation
    rows, on (masked photo + hole mask, RGB photo) with the holes as boxes (reading `ours`),
    or, reading `authors`, replaces GL's local discriminator with one trunk shared over the
    expanded-mask images inside GL's one logit (ExpandedContextLoss)."""
    ip = params.inpainting
    generator = CompletionNetwork(ip.ngf, ip.n_downsampling, ip.dilations)
    reconstruction = ReconstructionLoss(ip.reconstruction, divisor=rec_divisor)
    if loss == "gl_amex" and reading == "authors":
        return generator, [reconstruction,
                           ExpandedContextLoss(height, width, q=ip.q, expand_x=ip.alpha,
                                               expand_y=ip.beta, ndf=ip.ndf,
                                               global_layers=ip.global_layers,
                                               local_layers=ip.local_layers,
                                               alpha=ip.lambda_adv)]
    if reading != "ours":
        raise ValueError(f"unknown A-MEx reading {reading!r} for loss {loss!r} (ours; authors "
                         "for gl_amex)")
    plugins = [reconstruction,
               GlobalLocalLoss(height, width, local_patch_size(width, height, ip.local_fraction),
                               ndf=ip.ndf, global_layers=ip.global_layers,
                               local_layers=ip.local_layers, alpha=ip.lambda_adv)]
    if loss == "gl_amex":
        plugins.append(AMExLoss(4, top_level=ip.q, alpha=ip.alpha, beta=ip.beta, ndf=ip.ndf,
                                n_layers=ip.amex_layers,
                                lambda_mex=ip.lambda_adv * ip.lambda_amex, image_channels=3))
    elif loss != "gl":
        raise ValueError(f"unknown inpainting loss {loss!r} (gl, gl_amex)")
    return generator, plugins


class InpaintingKind(RowKind):
    name = "inpainting"
    sections = ("inpainting_rows",)
    table = "inpainting"
    # outside artifacts/data and artifacts/models: the segmentation stages depend on those
    data_root = "artifacts/inpainting/data"
    model_root = "artifacts/inpainting/models"

    def dataset(self, params: Params, name: str) -> str:
        self.rows(params)[name]
        return params.inpainting.dataset

    def data_dir(self, params: Params, name: str) -> str:
        return self.data_root   # prepare_inpainting: one dataset, no per-dataset folder

    def build(self, params: Params, row, photos, seed: int, reading: str | None = None):
        """(completion network, loss plug-ins, task) of a row on training photos
        (N, H, W, 3) uint8; the hole fill is their mean colour."""
        ip = params.inpainting
        height, width = photos.shape[1:3]
        generator, losses = build_gl(row.loss, params, height, width,
                                     reading or row.amex_reading, row.rec_divisor)
        task = InpaintingTask(photos, fill=mean_colour(photos), hole=(ip.hole_min, ip.hole_max),
                              batch_size=ip.batch_size, flip=ip.flip, seed=seed)
        return generator, losses, task

    def run(self, params: Params, name: str, data_dir: str, seed: int) -> Run:
        """Row `name` on the prepared facade photos, in GL's three phases. SSIM / L1 on the
        seed-679 holes of the first train.eval_boxes test images are logged as learning
        curves (dvclive eval/)."""
        row, ip, t = self.rows(params)[name], params.inpainting, params.train
        train_path = os.path.join(data_dir, "train.h5")
        split = read_split(train_path)
        height, width = split.photos.shape[1:3]
        if (width, height) != (ip.width, ip.height):
            raise ValueError(f"{train_path}: photos are {width}x{height}, params inpainting is "
                             f"{ip.width}x{ip.height} (rerun the prepare stage)")
        fill = mean_colour(split.photos)
        generator, losses, task = self.build(params, row, split.photos, seed)
        # the trainer's steps per epoch (under torchrun every rank takes its share)
        world = Context(world_size=int(os.environ.get("WORLD_SIZE", "1")))
        steps = world.steps_per_epoch(len(task))
        phases = gl_phases(ip.completion_epochs * steps, ip.discriminator_epochs * steps, losses)
        amex = row.loss == "gl_amex"
        extra = {"dataset": ip.dataset, "loss": row.loss, "q": ip.q if amex else -1,
                 "amex_reading": row.amex_reading if amex else "none",
                 "rec_divisor": row.rec_divisor,
                 "alpha": ip.alpha if amex else -1, "beta": ip.beta if amex else -1,
                 "in_channels": 4, "train_images": len(split.names), "seed": seed,
                 "fill": list(fill), "phases": [[p.name, p.steps] for p in phases],
                 "data_md5": files_md5(data_dir, DATA_FILES)}
        config = {"inpainting": to_dict(ip), "train": {k: getattr(t, k) for k in TRAIN_KEYS}}
        held_back = HeldBackHoles(data_dir, params, t.eval_boxes, fill)
        return Run(name=name, kind=self.name, generator=generator, losses=losses, task=task,
                   epochs=ip.epochs, size=(width, height), extra=extra,
                   optimiser=(ip.lr, (ip.beta1, ip.beta2)), config=config, phases=phases,
                   monitor=held_back.scores, no_vgg="none (GL: no perceptual loss)",
                   model_info={"model": None, "twosm": None, "gl": {
                       "ngf": ip.ngf, "n_downsampling": ip.n_downsampling,
                       "dilations": list(ip.dilations), "fill": list(fill)}})

    def network(self, state: dict):
        gl = state["gl"]
        generator = CompletionNetwork(gl["ngf"], gl["n_downsampling"], tuple(gl["dilations"]),
                                      state["in_channels"])
        generator.fill = tuple(gl["fill"])
        return generator

    def score(self, test: InpaintingTestSet, generator) -> tuple:
        return test.run(generator)

    def test_datasets(self, params: Params, row_datasets: list) -> list:
        """The inpainting dataset's test set, scored for its floors even without rows."""
        return [params.inpainting.dataset]

    def training_settings(self, params: Params, row) -> dict:
        return {"inpainting": to_dict(params.inpainting)}

    def test_set(self, params: Params, dataset: str, device, load_translator=None):
        """The seed-679 holes of every test photo, with the floors' fill colour (the mean
        colour of the training photos)."""
        ip = params.inpainting
        test = InpaintingTestSet(self.data_root, ip.width, ip.height, ip.test_holes,
                                 dataset=dataset, fid_holes=ip.fid_holes)
        # read after test.h5: a missing prepared split is named in that order, as before
        test.floor_fill = mean_colour(read_split(os.path.join(self.data_root, "train.h5")).photos)
        return test

    def conditions(self, params: Params, test_sets: dict) -> dict:
        """What inpainting_run_conditions.json records besides the device, FID and seeds."""
        ip = params.inpainting
        return {"data_source": params.data.label([ip.dataset]),
                "hole_seed": params.evaluate.seed, "holes_per_image": ip.test_holes,
                "fid_holes_per_image": ip.fid_holes, "size": f"{ip.width}x{ip.height}",
                "fill": list(test_sets[ip.dataset].floor_fill)}
