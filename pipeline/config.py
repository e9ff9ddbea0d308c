"""Typed view of params.yaml: frozen dataclasses mirroring its sections, one loader that rejects
unknown keys, wrong types and out-of-range values with one line naming the key."""
from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass

import yaml

from pipeline.data.boxes import BOX_CONVENTIONS, BOX_RULES, DEFAULT_BOX_RULE
from pipeline.data.datasets import SPECS


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key, the value and what is allowed."""


#---------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class DatasetParams:
    width: int                    # prepared map width (paper: 256 / 192 / 256)
    height: int                   # prepared map height (paper: 128 / 144 / 256)
    size_threshold: float         # eligible box: area >= threshold * image area
    synthetic_train: int = 48     # images generated for the synthetic default
    synthetic_test: int = 16
    box_list_threshold: float = 0.0  # boxes.csv lists boxes down to this (0: size_threshold);
                                     # for rows with a lower size_threshold (TwoSM: 0.01)


DATA_SOURCES = ("synthetic", "real")


@dataclass(frozen=True)
class DataParams:
    source: str = "synthetic"     # synthetic (embedded generator) | real (data/raw via stages.prepare)
                                  # of every dataset that `sources` does not name
    sources: dict = dataclasses.field(default_factory=dict)  # per-dataset source, e.g.
                                  # {cityscapes: real}: a dataset of `datasets` or
                                  # inpainting.dataset -> synthetic | real
    raw_dir: str = "data/raw"     # where the real archives go (tracked by data.dvc)
    seed: int = 0                 # synthetic generator seed
    box_rule: str = DEFAULT_BOX_RULE  # eligible boxes (pipeline.data.boxes): authors (their code:
                                  # plain ids of edit classes too, Helen one instance per class,
                                  # (h-1)(w-1) > thr*H*W) | tight (object ids / 8-connected
                                  # components only, h*w >= thr*H*W)

    val_sequences: list = dataclasses.field(default_factory=list)  # real Cityscapes with a
                                  # train split only (the video frames): the sequences
                                  # (<city>_<sequence>) held out as the test split

    def source_of(self, dataset: str) -> str:
        """The resolved data source of one dataset: data.sources.<dataset>, else data.source."""
        return self.sources.get(dataset, self.source)

    def label(self, datasets) -> str:
        """What a report says about the data of `datasets`: their one source when they share it
        ("synthetic", "real"), else each one's ("cityscapes real, nyu synthetic, ...")."""
        resolved = {name: self.source_of(name) for name in datasets}
        if len(set(resolved.values())) <= 1:
            return next(iter(resolved.values()), self.source)
        return ", ".join(f"{name} {source}" for name, source in resolved.items())


def data_sources(params) -> dict:
    """dataset -> resolved source (synthetic | real) of every dataset of `params`: those of
    `datasets`, then the inpainting dataset (Table 3)."""
    return {name: params.data.source_of(name)
            for name in [*params.datasets, params.inpainting.dataset]}


@dataclass(frozen=True)
class ModelParams:
    ngf: int = 64                 # generator base width (pix2pixHD GlobalGenerator)
    n_downsampling: int = 4       # H and W must be multiples of 2**n_downsampling
    n_blocks: int = 9             # residual blocks
    ndf: int = 64                 # discriminator base width (global and MEx discriminators)
    n_layers_d: int = 3           # PatchGAN depth
    num_d: int = 2                # scales of the global multiscale discriminator


@dataclass(frozen=True)
class LossParams:
    lambda_adv: float = 1.0       # λ1 (paper 1; authors' code 1)
    lambda_mex: float = 1.0       # λ4 (paper 1; authors' code 1); λ2, λ3: the profile's
    vgg_layer_weights: tuple = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # Eq 4, relu1_1..relu5_1
    vgg_weights_path: str = ""    # VGG19 .pth; "" = torch hub cache (vgg19-dcbb9e9d.pth)
    without_vgg_weights: str = "standin"  # when no VGG19 weights file is found: standin = a
                                  # random-init VGG19 (labelled STAND-IN) | drop = no L_perc term
                                  # and no VGG19 forward (labelled DROPPED); real weights win


@dataclass(frozen=True)
class ProfileParams:
    """The training settings where the paper and the authors' code differ (README, "Paper
    facts and our choices"): `profiles.paper` and `profiles.authors` in params.yaml; the
    top-level `profile` (or a row's own `profile`) picks one."""
    lambda_feat: float            # λ2, feature matching (paper 1; authors' code 10)
    lambda_perc: float            # λ3, VGG19 perceptual loss (paper 1; authors' code 10)
    basic_loss_on: str            # raw: L_B on Ỹ (paper Eq 1) | fused: on Ŷ (authors' code)
    discriminators: str           # q_plus_one: D_0..D_q (paper Eq 6-7) | q: D_0..D_(q-1), the
                                  # authors' range(q) (q = 0: no expansion term at all)
    vgg_input: str                # imagenet: [-1, 1] mapped to ImageNet mean/std, what
                                  # torchvision's VGG19 weights expect | raw: [-1, 1] as is, as
                                  # pix2pixHD (and the authors' code) feed it
    box_convention: str = "whole"  # the part of a test box tIOU / hamm score (evaluation):
                                  # whole | authors: without its last row and column, as the
                                  # authors' test code slices [r0:r1, c0:c1] of an inclusive box


@dataclass(frozen=True)
class TrainParams:
    epochs: int = 200             # constant lr for the first half, linear decay to 0 after
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    flip: bool = True             # random horizontal flip (authors' code)
    seed: int = 0                 # seed of G_I (translator) training and of the evaluation
    checkpoint_every: int = 0     # steps between checkpoints (0: end of each epoch only)
    log_every: int = 1            # steps between dvclive points
    cpu_threads: int = 2          # fixed so CPU runs are bit-reproducible across machines
    device: str = "auto"          # auto (cuda when present) | cpu | cuda | cuda:N
    processes: int = 1            # data-parallel processes (GPUs); > 1 relaunches under torchrun
    portable: bool = True         # CPU results bit-identical across x86-64 CPUs (docs/portability.md)
    eval_every: int = 0           # steps between tIOU/hamm learning-curve points (0: end only)
    eval_boxes: int = 8           # held-back slice: the first N test boxes, scored during training
    # How the step runs (pipeline.training.trainer.Acceleration); the GPU settings are in params_paper.yaml
    precision: str = "fp32"       # fp32 | bf16 (autocast)
    channels_last: bool = False   # NHWC layout of networks and inputs
    fused_adam: bool = True       # torch's fused Adam kernel
    compile: bool = False         # torch.compile the generator
    deterministic: bool = False   # torch's deterministic kernels (identical GPU reruns; slower)
    data_workers: int = 0         # DataLoader processes building the batches (0: in the trainer)
    mex_crop_canvas: int = 0      # 0: each MEx D_j on its crops, one call per crop size | N: the
                                  # q+1 D_j as one grouped network on crops zero-padded to a
                                  # canvas rounded up to multiples of N px (pipeline.models.losses.MExLoss)


@dataclass(frozen=True)
class TranslatorParams:
    epochs: int = 200             # G_I (colour map -> photo) training epochs


@dataclass(frozen=True)
class EvaluateParams:
    seed: int = 679               # test-box seed (paper)
    fid_dims: int = 2048          # pytorch-fid feature layer (2048 = pool3)
    inception_weights_path: str = ""  # pt_inception-2015-12-05-6726825d.pth; "" = torch hub cache
    grid_images: int = 4          # examples per dataset in the qualitative grids


@dataclass(frozen=True)
class TwoSMParams:
    """The two-stream model of Table 2 (pipeline.models.twosm, docs/twosm.md). `build` picks the
    defaults of the eight switches below it (TWOSM_BUILDS); a switch given in the section wins
    over its build's value. The dataclass defaults are the `simplified` build."""
    crop_size: int = 256          # model size of the local observation (paper: 256 crops)
    batch_size: int = 16          # TwoSM rows' batch (Hong et al.: 16; train.batch_size: others)
    lambda_gan: float = 0.1       # the multiscale LSGAN on the stream `discriminator` names
                                  # (Hong et al.: 0.1)
    lambda_mask: float = 1.0      # BCE of the object-mask stream
    lambda_context: float = 1.0   # NLL of the context stream
    build: str = "simplified"     # simplified: our first model, from the papers' text (the
                                  # switches' defaults) | hong: Hong et al.'s code at our sizes
    context_loss: str = "view"    # NLL over: view (the whole observation) | enlarged_box (the box
                                  # enlarged 1.2-1.5x, Hong et al.'s MaskReconLoss)
    discriminator: str = "context"  # the stream the LSGAN scores: context | mask (Hong et al.)
    mask_gate: bool = False       # the mask stream times the enlarged box before its BCE and D
                                  # (Hong et al.'s use_output_gate)
    labels: str = "context_argmax"  # test labels in the box: context_argmax | painted_mask (l_t
                                  # where the mask stream > 0.5, the context argmax elsewhere)
    encoder_skips: bool = False   # encoder features concatenated into the context stream's
                                  # up-sampling stages (Hong et al.: U-Net skips, context only)
    norm: str = "instance"        # generator normalisation: instance | batch (Hong et al.)
    background_boxes: float = 0.0  # share of training boxes drawn at random with the last label
                                  # and an empty object target (Hong et al.'s prob_bg: 0.3)
    crop_jitter: str = "within"   # the local window's training jitter: within (anywhere that
                                  # still holds the box: up to about ±1/2 of the box's longer
                                  # side) | quarter (Hong et al.'s crop_box_with_margin: the
                                  # centred window moved by up to ±1/4 of the longer side)


# The `twosm.build` presets: the switch values each build sets (docs/twosm.md).
TWOSM_BUILDS = {
    "simplified": {"context_loss": "view", "discriminator": "context", "mask_gate": False,
                   "labels": "context_argmax", "encoder_skips": False, "norm": "instance",
                   "background_boxes": 0.0, "crop_jitter": "within"},
    "hong": {"context_loss": "enlarged_box", "discriminator": "mask", "mask_gate": True,
             "labels": "painted_mask", "encoder_skips": True, "norm": "batch",
             "background_boxes": 0.3, "crop_jitter": "quarter"},
}
# The values of the string switches.
TWOSM_CHOICES = {"context_loss": ("view", "enlarged_box"), "discriminator": ("context", "mask"),
                 "labels": ("context_argmax", "painted_mask"), "norm": ("instance", "batch"),
                 "crop_jitter": ("within", "quarter")}


@dataclass(frozen=True)
class InpaintingParams:
    """Table 3: GL and GL+A-MEx inpainting on CMP Facade (pipeline.models.inpainting). Its own data
    size, networks, phases and optimiser: the segmentation sections do not apply."""
    dataset: str = "facade"       # the inpainting dataset (CMP Facade; no edit classes)
    width: int = 248              # prepared photo size (paper 248x242: any size, the completion
    height: int = 242             # network pads to its stride and crops back)
    synthetic_train: int = 48     # images generated for the synthetic default
    synthetic_test: int = 8       # (paper: 598 train / 8 test images)
    hole_min: float = 0.375       # hole side / image side, training and test holes
    hole_max: float = 0.5         # (GL: 96..128 of 256)
    test_holes: int = 20          # holes per test image, drawn with evaluate.seed (paper 20)
    fid_holes: int = 20           # of these, the first N per image enter FID (paper: all; FID's
                                  # Inception at 299 px is the slow part of a CPU evaluation)
    local_fraction: float = 0.5   # local discriminator patch side / image side (GL: 128 of 256)
    ngf: int = 64                 # completion network base width (GL 64)
    n_downsampling: int = 2       # stride-2 convolutions of the completion network (GL 2)
    dilations: tuple = (2, 4, 8, 16)  # dilated convolutions in the middle (GL 2, 4, 8, 16)
    ndf: int = 64                 # context discriminator base width (GL 64)
    global_layers: int = 6        # stride-2 conv5 layers of the global trunk (GL 6 at 256)
    local_layers: int = 5         # ... of the local trunk (GL 5 at 128)
    amex_layers: int = 3          # PatchGAN depth of the A-MEx discriminator
    reconstruction: str = "mse"   # GL's L_rec inside the hole: mse (GL) | l1
    lambda_adv: float = 0.0004    # GL's α on the adversarial term (GL and the authors' code)
    lambda_amex: float = 1.0      # λ4 (paper 1), relative to α: the A-MEx term is α·λ4·L_A-MEx
    q: int = 4                    # A-MEx expansions j = 0..q (paper 4)
    alpha: int = 4                # horizontal expansion step, pixels (paper 4 at 248 px)
    beta: int = 4                 # vertical expansion step, pixels (paper 4)
    epochs: int = 2000            # paper 2000 (constant lr for half, then linear to 0)
    completion_epochs: int = 360  # GL phase 1: completion network alone (GL: 18 % of training)
    discriminator_epochs: int = 40  # GL phase 2: discriminators alone (GL: 2 %); then joint
    batch_size: int = 64          # authors' facade code 64 (GL 96)
    lr: float = 0.001             # Adam, as the authors' facade code (GL used Adadelta)
    beta1: float = 0.9
    beta2: float = 0.999
    flip: bool = True             # random horizontal flip


@dataclass(frozen=True)
class HuevParams:
    """Table 1's human evaluation (pipeline.apps.huev, the web app of stages.serve)."""
    rows: tuple = ("pix2pixhd-cityscapes", "mexgan-cityscapes")  # the two rows compared
    items: int = 0                # study items per participant: the first N test boxes (0: all)
    database: str = "huev/votes.sqlite"  # the live votes database (git-ignored)
    votes: str = "huev/votes.csv"  # votes exported from it: the huev stage's input (commit it)
    editor_row: str = "mexgan-cityscapes"  # the model the editor page uses


@dataclass(frozen=True)
class InpaintingRow:
    """A Table 3 row: loss gl (GL) | gl_amex (GL + λ4 L_A-MEx)."""
    loss: str
    amex_reading: str = "ours"    # gl_amex: how GL and A-MEx combine. ours: GL's context D +
                                  # a separate A-MEx PatchGAN (Eq 9); authors: their facade
                                  # code's D, GL's local trunk shared over the expanded-mask
                                  # images into the one logit (pipeline.models.inpainting)
    rec_divisor: str = "hole"     # GL's L_rec, the error summed over the hole, divided by: hole
                                  # (its pixels x channels; ours) | image (every pixel and
                                  # channel of the batch: the authors' code, the GLCIC port)


@dataclass(frozen=True)
class Row:
    """One model row of the paper's tables: a dataset and a generator loss.
    Pix2PixHD / MEx rows: loss pix2pixhd (L_B) | mex (L_B + λ4 L_MEx) | amex (L_B + λ4 L_A-MEx).
    TwoSM rows: loss twosm (TwoSM's objective) | mex | amex (+ λ4 L_(A-)MEx on the context
    stream), observation local (TwoSM) | full (TwoSM+Full)."""
    dataset: str
    loss: str
    q_from: str = ""              # name of the top-level param holding this row's q (MEx rows)
    observation: str = ""         # TwoSM rows: local | full
    size_threshold: float = 0.0   # training boxes' area threshold (0: the dataset's)
    profile: str = ""             # a name in `profiles` ("": the top-level `profile`)
    epochs: int = 0               # this row's training epochs (0: train.epochs); a row that
                                  # converges later trains longer, on the same lr schedule


@dataclass(frozen=True)
class Params:
    q: int                        # MEx expansions: q+1 discriminators D_0..D_q (Eq 6-7)
    q_overrides: dict             # per-dataset q (paper: NYU uses q = 5)
    q_sweep: dict                 # the q-sensitivity rows (Fig 10)
    seeds: tuple                  # training seeds: every structure row is trained once per seed
    alpha: int                    # horizontal expansion step, pixels (paper 5)
    beta: int                     # vertical expansion step, pixels (paper 5)
    profile: str                  # the training settings of every row: a name in `profiles`
    profiles: dict                # name -> ProfileParams (paper, authors)
    data: DataParams
    datasets: dict                # name -> DatasetParams
    model: ModelParams
    loss: LossParams
    train: TrainParams
    translator: TranslatorParams
    evaluate: EvaluateParams
    twosm: TwoSMParams
    baselines: dict               # row name -> Row (no expansion loss)
    mex_rows: dict                # row name -> Row (MEx / A-MEx)
    twosm_rows: dict              # row name -> Row (the two-stream model, Table 2)
    inpainting: InpaintingParams  # Table 3: GL inpainting on CMP Facade
    inpainting_rows: dict         # row name -> InpaintingRow (Table 3)
    huev: HuevParams              # Table 1's human evaluation (HuEv study and editor page)

    @property
    def rows(self) -> dict:
        return {**self.baselines, **self.mex_rows, **self.twosm_rows}

    def is_twosm(self, name: str) -> bool:
        return name in self.twosm_rows

    def row_epochs(self, name: str) -> int:
        """A row's training epochs: its own `epochs`, else train.epochs."""
        return self.row(name).epochs or self.train.epochs

    def row_threshold(self, name: str) -> float:
        """The area threshold of a row's training boxes."""
        row = self.row(name)
        return row.size_threshold or self.datasets[row.dataset].size_threshold

    def row(self, name: str) -> Row:
        if name not in self.rows:
            raise ParamsError(f"unknown row {name!r}; params.yaml rows: {', '.join(self.rows)}")
        return self.rows[name]

    @property
    def box_convention(self) -> str:
        """The part of each test box tIOU and hamm score (pipeline.data.boxes.scored_box): the
        top-level profile's, for every row and floor of an evaluation (rows stay comparable)."""
        return self.profiles[self.profile].box_convention

    def row_profile(self, name: str | None = None) -> ProfileParams:
        """The training settings of a row (its own `profile`, else the top-level one); of the
        translators (no row) the top-level one."""
        return self.profile_of(self.row(name) if name is not None else None)

    def profile_of(self, row: Row | None) -> ProfileParams:
        """The training settings of a Row (its own `profile`, else the top-level one)."""
        return self.profiles[(row.profile if row is not None else "") or self.profile]

    def row_q(self, name: str) -> int | None:
        """The q of a row (q_of) by name."""
        return self.q_of(self.row(name))

    def q_of(self, row: Row) -> int | None:
        """The q of a row with an expansion loss (mex / amex), read from the param its q_from
        names (e.g. q, q_overrides.nyu); None for a row without one. The one place a row's q
        is resolved."""
        if row.loss not in ("mex", "amex"):
            return None
        return int(lookup(self, row.q_from))


#---------------------------------------------------------------------------------------------
# Loading and validation


def lookup(params: Params, dotted: str):
    """The value of a dotted params key (e.g. q_overrides.nyu), or None if there is none."""
    node = params
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return None
    return node


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ParamsError(f"{key}: missing")
            continue
        values[name] = _coerce(hints[name], data[name], key)
    return cls(**values)


def _coerce(kind, value, key):
    if kind is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: {value!r} is not true/false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: {value!r} is not an integer")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{key}: {value!r} is not a number")
        if not math.isfinite(value):
            raise ParamsError(f"{key}: {value!r} is not a finite number")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: {value!r} is not a string")
        return value
    if kind is tuple:
        if not isinstance(value, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in value):
            raise ParamsError(f"{key}: {value!r} is not a list of finite numbers")
        return tuple(float(v) for v in value)
    return value


def _check(condition: bool, key: str, value, allowed: str):
    if not condition:
        raise ParamsError(f"{key}: {value!r} not allowed ({allowed})")


def parse_params(raw: dict) -> Params:
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml: expected a mapping at the top level")
    top = {f.name for f in dataclasses.fields(Params)}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown key (allowed: {', '.join(sorted(top))})")
    for key in top:
        if key not in raw:
            raise ParamsError(f"{key}: missing")
    for key in ("q", "alpha", "beta"):
        _coerce(int, raw[key], key)
        _check(raw[key] >= 0, key, raw[key], "an integer >= 0")
    seeds = raw["seeds"]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ParamsError(f"seeds: {seeds!r} is not a non-empty list of integers")
    _check(len(set(seeds)) == len(seeds), "seeds", seeds, "distinct seeds")
    for seed in seeds:
        _check(0 <= seed < SEED_LIMIT, "seeds", seeds, "integers in [0, 2**32)")
    for section in ("q_overrides", "q_sweep"):
        if not isinstance(raw[section], dict):
            raise ParamsError(f"{section}: expected a mapping, got {raw[section]!r}")
        for name, value in raw[section].items():
            _coerce(int, value, f"{section}.{name}")
            _check(value >= 0, f"{section}.{name}", value, "an integer >= 0")
    params = Params(
        q=raw["q"], q_overrides=dict(raw["q_overrides"]), q_sweep=dict(raw["q_sweep"]),
        seeds=tuple(raw["seeds"]),
        alpha=raw["alpha"], beta=raw["beta"],
        profile=_coerce(str, raw["profile"], "profile"),
        profiles={name: _build(ProfileParams, value, f"profiles.{name}")
                  for name, value in _mapping(raw["profiles"], "profiles").items()},
        data=_build(DataParams, raw["data"], "data"),
        datasets={name: _build(DatasetParams, value, f"datasets.{name}")
                  for name, value in _mapping(raw["datasets"], "datasets").items()},
        model=_build(ModelParams, raw["model"], "model"),
        loss=_build(LossParams, raw["loss"], "loss"),
        train=_build(TrainParams, raw["train"], "train"),
        translator=_build(TranslatorParams, raw["translator"], "translator"),
        evaluate=_build(EvaluateParams, raw["evaluate"], "evaluate"),
        twosm=_twosm(raw["twosm"]),
        baselines={name: _build(Row, value, f"baselines.{name}")
                   for name, value in _mapping(raw["baselines"], "baselines").items()},
        mex_rows={name: _build(Row, value, f"mex_rows.{name}")
                  for name, value in _mapping(raw["mex_rows"], "mex_rows").items()},
        twosm_rows={name: _build(Row, value, f"twosm_rows.{name}")
                    for name, value in _mapping(raw["twosm_rows"], "twosm_rows").items()},
        inpainting=_inpainting(raw["inpainting"]),
        inpainting_rows={name: _build(InpaintingRow, value, f"inpainting_rows.{name}")
                         for name, value in _mapping(raw["inpainting_rows"],
                                                     "inpainting_rows").items()},
        huev=_huev(raw["huev"]),
    )
    _validate(params)
    return params


def _huev(raw) -> HuevParams:
    """The huev section; its rows are two distinct row names (which rows exist is checked
    where they are used: stages.serve, stages.huev)."""
    if not isinstance(raw, dict):
        raise ParamsError(f"huev: expected a mapping, got {raw!r}")
    rows = raw.get("rows", list(HuevParams.rows))
    if (not isinstance(rows, list) or len(rows) != 2 or not all(isinstance(r, str) and r
                                                                 for r in rows)
            or rows[0] == rows[1]):
        raise ParamsError(f"huev.rows: {rows!r} is not a list of two different row names")
    huev = _build(HuevParams, {k: v for k, v in raw.items() if k != "rows"}, "huev")
    huev = dataclasses.replace(huev, rows=tuple(rows))
    _check(huev.items >= 0, "huev.items", huev.items, "an integer >= 0 (0: every test box)")
    for key in ("database", "votes"):
        _check(getattr(huev, key).strip() != "", f"huev.{key}", getattr(huev, key), "a path")
    return huev


def check_huev_rows(params: Params) -> str:
    """The dataset of the study's two rows; ParamsError unless both are rows of the params
    and of one dataset."""
    for name in params.huev.rows:
        _check(name in params.rows, "huev.rows", name,
               f"rows of params.yaml: {', '.join(params.rows)}")
    datasets = {params.rows[name].dataset for name in params.huev.rows}
    _check(len(datasets) == 1, "huev.rows", list(params.huev.rows), "two rows of one dataset")
    return datasets.pop()


def _twosm(raw) -> TwoSMParams:
    """The twosm section: its build's switch values (TWOSM_BUILDS), overridden by the switches
    the section gives."""
    build = _mapping(raw, "twosm").get("build", TwoSMParams.build)
    _check(isinstance(build, str) and build in TWOSM_BUILDS, "twosm.build", build,
           " or ".join(TWOSM_BUILDS))
    return _build(TwoSMParams, {**TWOSM_BUILDS[build], **raw}, "twosm")


def _inpainting(raw) -> InpaintingParams:
    """The inpainting section; its dilations are integers (the generic list coercion gives
    floats)."""
    dilations = raw.get("dilations") if isinstance(raw, dict) else None
    if dilations is not None and (not isinstance(dilations, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dilations)):
        raise ParamsError(f"inpainting.dilations: {dilations!r} is not a list of integers >= 1")
    section = _build(InpaintingParams, raw, "inpainting")
    if dilations is not None:
        section = dataclasses.replace(section, dilations=tuple(dilations))
    return section


def _mapping(value, key):
    if not isinstance(value, dict):
        raise ParamsError(f"{key}: expected a mapping, got {value!r}")
    return value


# Row names become folder names (artifacts/models/<row>, reports/train/<row>).
ROW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SEED_LIMIT = 2 ** 32  # numpy's legacy seeding accepts 0 .. 2**32 - 1


def _validate(p: Params) -> None:
    _check(p.data.source in DATA_SOURCES, "data.source", p.data.source, "synthetic or real")
    _check(isinstance(p.data.sources, dict), "data.sources", p.data.sources,
           "a mapping dataset -> synthetic or real, e.g. {cityscapes: real}")
    names = [*p.datasets, p.inpainting.dataset]
    for name, source in p.data.sources.items():
        _check(name in names, f"data.sources.{name}", name,
               f"a dataset of `datasets` or inpainting.dataset: {', '.join(map(str, names))}")
        _check(source in DATA_SOURCES, f"data.sources.{name}", source, "synthetic or real")
    _check(p.data.box_rule in BOX_RULES, "data.box_rule", p.data.box_rule, " or ".join(BOX_RULES))
    _check(isinstance(p.data.val_sequences, list) and all(
        isinstance(v, str) and re.fullmatch(r"[a-z_]+_\d{6}", v) for v in p.data.val_sequences),
        "data.val_sequences", p.data.val_sequences,
        "a list of Cityscapes sequences <city>_<6 digits>, e.g. [aachen_000004]")
    real = [name for name, source in data_sources(p).items() if source == "real"]
    _check(not real or p.data.raw_dir.strip() != "", "data.raw_dir", p.data.raw_dir,
           f"the raw-data folder, needed for the real data of {', '.join(real)}")
    for key, value in (("data.seed", p.data.seed), ("train.seed", p.train.seed),
                       ("evaluate.seed", p.evaluate.seed)):
        _check(0 <= value < SEED_LIMIT, key, value, "an integer in [0, 2**32)")
    for name, d in p.datasets.items():
        _check(name in SPECS, f"datasets.{name}", name, f"known datasets: {', '.join(SPECS)}")
        multiple = 2 ** p.model.n_downsampling
        for dim in ("width", "height"):
            value = getattr(d, dim)
            _check(value > 0 and value % multiple == 0, f"datasets.{name}.{dim}", value,
                   f"a positive multiple of 2**model.n_downsampling = {multiple}")
        _check(0 < d.size_threshold < 1, f"datasets.{name}.size_threshold", d.size_threshold,
               "a fraction in (0, 1)")
        _check(d.synthetic_train > 0 and d.synthetic_test > 0, f"datasets.{name}.synthetic_train",
               (d.synthetic_train, d.synthetic_test), "positive image counts")
        _check(0 <= d.box_list_threshold <= d.size_threshold,
               f"datasets.{name}.box_list_threshold", d.box_list_threshold,
               "0 (= size_threshold) or a fraction <= size_threshold")
    for name in p.q_overrides:
        _check(name in p.datasets, f"q_overrides.{name}", name, "a dataset of `datasets`")
    m = p.model
    for key in ("ngf", "ndf", "n_layers_d", "num_d", "n_downsampling"):
        _check(getattr(m, key) >= 1, f"model.{key}", getattr(m, key), "an integer >= 1")
    _check(m.n_blocks >= 0, "model.n_blocks", m.n_blocks, "an integer >= 0")
    for key in ("lambda_adv", "lambda_mex"):
        _check(getattr(p.loss, key) >= 0, f"loss.{key}", getattr(p.loss, key), "a number >= 0")
    _check(p.profile in p.profiles, "profile", p.profile,
           f"a name in `profiles`: {', '.join(p.profiles) or 'none defined'}")
    for name, prof in p.profiles.items():
        where = f"profiles.{name}"
        for key in ("lambda_feat", "lambda_perc"):
            _check(getattr(prof, key) >= 0, f"{where}.{key}", getattr(prof, key), "a number >= 0")
        _check(prof.basic_loss_on in ("raw", "fused"), f"{where}.basic_loss_on",
               prof.basic_loss_on, "raw or fused")
        _check(prof.discriminators in ("q_plus_one", "q"), f"{where}.discriminators",
               prof.discriminators, "q_plus_one (D_0..D_q, paper) or q (range(q), authors)")
        _check(prof.box_convention in BOX_CONVENTIONS, f"{where}.box_convention",
               prof.box_convention, " or ".join(BOX_CONVENTIONS))
        _check(prof.vgg_input in ("imagenet", "raw"), f"{where}.vgg_input", prof.vgg_input,
               "imagenet or raw")
    _check(len(p.loss.vgg_layer_weights) == 5 and min(p.loss.vgg_layer_weights) >= 0,
           "loss.vgg_layer_weights", list(p.loss.vgg_layer_weights),
           "5 weights >= 0, relu1_1..relu5_1")
    _check(p.loss.without_vgg_weights in ("standin", "drop"), "loss.without_vgg_weights",
           p.loss.without_vgg_weights, "standin (random-init VGG19) or drop (no L_perc)")
    t = p.train
    _check(t.epochs >= 1, "train.epochs", t.epochs, "an integer >= 1")
    _check(t.batch_size >= 1, "train.batch_size", t.batch_size, "an integer >= 1")
    _check(t.lr > 0, "train.lr", t.lr, "a number > 0")
    _check(0 <= t.beta1 < 1, "train.beta1", t.beta1, "in [0, 1)")
    _check(0 <= t.beta2 < 1, "train.beta2", t.beta2, "in [0, 1)")
    _check(t.checkpoint_every >= 0, "train.checkpoint_every", t.checkpoint_every, ">= 0")
    _check(t.log_every >= 1, "train.log_every", t.log_every, "an integer >= 1")
    _check(t.cpu_threads >= 1, "train.cpu_threads", t.cpu_threads, "an integer >= 1")
    _check(t.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", str(t.device)),
           "train.device", t.device, "auto, cpu, cuda or cuda:N (one GPU of several)")
    _check(t.processes >= 1, "train.processes", t.processes, "an integer >= 1")
    _check(t.eval_every >= 0, "train.eval_every", t.eval_every, "an integer >= 0")
    _check(t.eval_boxes >= 1, "train.eval_boxes", t.eval_boxes, "an integer >= 1")
    _check(t.precision in ("fp32", "bf16"), "train.precision", t.precision, "fp32 or bf16")
    _check(t.data_workers >= 0, "train.data_workers", t.data_workers, "an integer >= 0")
    _check(t.mex_crop_canvas >= 0, "train.mex_crop_canvas", t.mex_crop_canvas,
           "0 (one D_j call per crop size) or a multiple in px > 0")
    _check(p.translator.epochs >= 1, "translator.epochs", p.translator.epochs, ">= 1")
    _check(p.evaluate.fid_dims in (64, 192, 768, 2048), "evaluate.fid_dims", p.evaluate.fid_dims,
           "64, 192, 768 or 2048 (pytorch-fid blocks)")
    _check(p.evaluate.grid_images >= 1, "evaluate.grid_images", p.evaluate.grid_images,
           "an integer >= 1")
    _check(p.twosm.crop_size > 0 and p.twosm.crop_size % (2 ** m.n_downsampling) == 0,
           "twosm.crop_size", p.twosm.crop_size,
           f"a positive multiple of 2**model.n_downsampling = {2 ** m.n_downsampling}")
    _check(p.twosm.batch_size >= 1, "twosm.batch_size", p.twosm.batch_size, "an integer >= 1")
    for key in ("lambda_gan", "lambda_mask", "lambda_context"):
        _check(getattr(p.twosm, key) >= 0, f"twosm.{key}", getattr(p.twosm, key), "a number >= 0")
    for key, choices in TWOSM_CHOICES.items():
        _check(getattr(p.twosm, key) in choices, f"twosm.{key}", getattr(p.twosm, key),
               " or ".join(choices))
    _check(0 <= p.twosm.background_boxes < 1, "twosm.background_boxes", p.twosm.background_boxes,
           "a share in [0, 1) (Hong et al.: 0.3)")
    _validate_inpainting(p)
    groups = (("baselines", p.baselines), ("mex_rows", p.mex_rows),
              ("twosm_rows", p.twosm_rows))
    allowed_losses = {"baselines": ("pix2pixhd",), "mex_rows": ("mex", "amex"),
                      "twosm_rows": ("twosm", "mex", "amex")}
    for group, rows in groups:
        for name, row in rows.items():
            _check(isinstance(name, str) and ROW_NAME.fullmatch(name) is not None,
                   f"{group}.{name}", name, "a row name of letters, digits, '.', '_', '-' "
                   "(it names folders)")
            _check(row.dataset in p.datasets, f"{group}.{name}.dataset", row.dataset,
                   f"a dataset of `datasets`: {', '.join(p.datasets)}")
            allowed = allowed_losses[group]
            _check(row.loss in allowed, f"{group}.{name}.loss", row.loss, " or ".join(allowed))
            _check(row.profile == "" or row.profile in p.profiles, f"{group}.{name}.profile",
                   row.profile, f"empty (the top-level profile) or a name in `profiles`: "
                   f"{', '.join(p.profiles)}")
            if group == "twosm_rows":
                _check(row.observation in ("local", "full"), f"{group}.{name}.observation",
                       row.observation, "local or full")
            else:
                _check(row.observation == "", f"{group}.{name}.observation", row.observation,
                       "empty: only TwoSM rows have an observation")
            _check(isinstance(row.epochs, int) and row.epochs >= 0, f"{group}.{name}.epochs",
                   row.epochs, "an integer >= 1, or 0 for train.epochs")
            if row.size_threshold:
                dataset = p.datasets[row.dataset]
                lowest = dataset.box_list_threshold or dataset.size_threshold
                _check(lowest <= row.size_threshold < 1, f"{group}.{name}.size_threshold",
                       row.size_threshold, f"0 (the dataset's) or a fraction >= datasets."
                       f"{row.dataset}.box_list_threshold ({lowest:g}; boxes.csv lists no "
                       "smaller box)")
            if group == "mex_rows" or (group == "twosm_rows" and row.loss != "twosm"):
                q_names = ["q"] + [f"q_overrides.{k}" for k in p.q_overrides] + \
                    [f"q_sweep.{k}" for k in p.q_sweep]
                _check(row.q_from in q_names, f"{group}.{name}.q_from", row.q_from,
                       f"one of {', '.join(q_names)}")
            else:
                _check(row.q_from == "", f"{group}.{name}.q_from", row.q_from,
                       "empty: a row without an expansion loss has no q")
    for name, row in p.inpainting_rows.items():
        _check(isinstance(name, str) and ROW_NAME.fullmatch(name) is not None,
               f"inpainting_rows.{name}", name, "a row name of letters, digits, '.', '_', '-' "
               "(it names folders)")
        _check(row.loss in INPAINTING_LOSSES, f"inpainting_rows.{name}.loss", row.loss,
               " or ".join(INPAINTING_LOSSES))
        _check(row.amex_reading in INPAINTING_AMEX_READINGS,
               f"inpainting_rows.{name}.amex_reading", row.amex_reading,
               " or ".join(INPAINTING_AMEX_READINGS))
        _check(row.loss == "gl_amex" or row.amex_reading == "ours",
               f"inpainting_rows.{name}.amex_reading", row.amex_reading,
               "ours: only gl_amex rows have an A-MEx reading")
        _check(row.rec_divisor in INPAINTING_REC_DIVISORS,
               f"inpainting_rows.{name}.rec_divisor", row.rec_divisor,
               " or ".join(INPAINTING_REC_DIVISORS))
    names = [name for _, rows in groups for name in rows] + list(p.inpainting_rows)
    overlap = sorted({name for name in names if names.count(name) > 1})
    _check(not overlap, "mex_rows", overlap, "row names unique across the row groups")


INPAINTING_LOSSES = ("gl", "gl_amex")
INPAINTING_AMEX_READINGS = ("ours", "authors")  # inpainting_rows.<row>.amex_reading
INPAINTING_REC_DIVISORS = ("hole", "image")     # inpainting_rows.<row>.rec_divisor


def _validate_inpainting(p: Params) -> None:
    ip = p.inpainting
    _check(ip.dataset == "facade", "inpainting.dataset", ip.dataset,
           "facade (CMP Facade, the paper's inpainting dataset)")
    _check(ip.dataset not in p.datasets, f"datasets.{ip.dataset}", ip.dataset,
           "the inpainting dataset has no edit classes: configure it under `inpainting`")
    stride = 2 ** ip.n_downsampling
    for dim in ("width", "height"):
        value = getattr(ip, dim)
        _check(value >= max(stride, 8), f"inpainting.{dim}", value,
               f"an integer >= 8 and >= the completion network's stride {stride} (any other "
               "size: it pads to the stride)")
    _check(ip.synthetic_train >= 1, "inpainting.synthetic_train", ip.synthetic_train,
           "an integer >= 1")
    _check(ip.synthetic_test >= 2, "inpainting.synthetic_test", ip.synthetic_test,
           "an integer >= 2 (intervals and FID need 2 test images)")
    _check(0 < ip.hole_min <= ip.hole_max <= 1, "inpainting.hole_min",
           (ip.hole_min, ip.hole_max), "0 < hole_min <= hole_max <= 1")
    _check(ip.hole_max <= ip.local_fraction <= 1, "inpainting.local_fraction",
           ip.local_fraction, f"in [hole_max = {ip.hole_max:g}, 1]: the local patch must hold "
           "the largest hole")
    _check(ip.test_holes >= 1, "inpainting.test_holes", ip.test_holes, "an integer >= 1")
    _check(1 <= ip.fid_holes <= ip.test_holes, "inpainting.fid_holes", ip.fid_holes,
           f"an integer in [1, test_holes = {ip.test_holes}]")
    for key in ("ngf", "ndf", "n_downsampling", "global_layers", "local_layers", "amex_layers",
                "epochs", "batch_size"):
        _check(getattr(ip, key) >= 1, f"inpainting.{key}", getattr(ip, key), "an integer >= 1")
    for key in ("q", "alpha", "beta", "completion_epochs", "discriminator_epochs"):
        _check(getattr(ip, key) >= 0, f"inpainting.{key}", getattr(ip, key), "an integer >= 0")
    _check(ip.completion_epochs + ip.discriminator_epochs < ip.epochs,
           "inpainting.completion_epochs", (ip.completion_epochs, ip.discriminator_epochs),
           f"completion_epochs + discriminator_epochs < epochs = {ip.epochs} (the joint phase "
           "needs at least one epoch)")
    _check(ip.reconstruction in ("mse", "l1"), "inpainting.reconstruction", ip.reconstruction,
           "mse or l1")
    for key in ("lambda_adv", "lambda_amex"):
        _check(getattr(ip, key) >= 0, f"inpainting.{key}", getattr(ip, key), "a number >= 0")
    _check(ip.lr > 0, "inpainting.lr", ip.lr, "a number > 0")
    _check(0 <= ip.beta1 < 1, "inpainting.beta1", ip.beta1, "in [0, 1)")
    _check(0 <= ip.beta2 < 1, "inpainting.beta2", ip.beta2, "in [0, 1)")


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that rejects a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue  # SafeLoader reports it
            if key in seen:
                raise ParamsError(f"{key}: given twice in one mapping (line "
                                  f"{key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_params(path: str = "params.yaml", overrides=()) -> Params:
    """The params file, with `overrides` ("section.key=value", the value in YAML, as
    `dvc exp run -S` takes them) applied before validation."""
    try:
        with open(path) as f:
            raw = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a folder, not a params file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{path}: not valid YAML ({where}{problem})") from None
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise ParamsError(f"override {override!r}: expected section.key=value")
        *sections, last = key.split(".")
        node = raw
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ParamsError(f"override {override!r}: {path} has no section "
                                  f"{key.rsplit('.', 1)[0]!r}")
        node[last] = yaml.safe_load(value)
    return parse_params(raw)


def seed_dir(root: str, row_name: str, seed: int) -> str:
    """Where one training run of a structure row lives: <root>/<row>/seed<k>."""
    return os.path.join(root, row_name, f"seed{seed}")


def to_dict(obj):
    """Resolved config as plain data (written next to every output)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    return obj
