"""Typed view of params.yaml: frozen dataclasses mirroring its sections, one loader that rejects
unknown keys, wrong types and out-of-range values with one line naming the key.

Here: the sections, one frozen dataclass each, and Params, the whole file with what a row
resolves."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pipeline.config.losses import expands
from pipeline.data.boxes import DEFAULT_BOX_RULE
from pipeline.data.sets import INPAINTING_DATASET


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class DatasetParams:
    width: int                    # prepared map width (paper: 256 / 192 / 256)
    height: int                   # prepared map height (paper: 128 / 144 / 256)
    size_threshold: float         # eligible box: area >= threshold * image area
    synthetic_train: int = 48     # images generated for the synthetic default
    synthetic_test: int = 16
    box_list_threshold: float = 0.0  # boxes.csv lists boxes down to this (0: size_threshold);


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
    dataset: str = INPAINTING_DATASET  # the inpainting dataset (CMP Facade; no edit classes)
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
    epochs: int = 0               # this row's training epochs (0: train.epochs)
    batch_size: int = 0           # this row's batch (0: its section's, twosm.batch_size for
                                  # TwoSM rows, train.batch_size else). A row with its own batch
                                  # plays no paper role: it is a variant of the row that does
                                  # (pipeline.evaluation.reports.paper_rows.variants)


@dataclass(frozen=True)
class RowSection:
    """A params section of table rows: the dataclass of its rows, the losses they may name
    (names of pipeline.config.losses.LOSSES), the stage that trains them and their
    observations (empty: rows without one)."""
    row: type
    losses: tuple
    stage: str                    # the dvc.yaml stage that trains its rows
    observations: tuple = ()


# Every params section of table rows (a row kind lists the ones it trains: pipeline.kinds).
ROW_SECTIONS = {
    "baselines": RowSection(Row, ("pix2pixhd",), "train_baseline"),
    "mex_rows": RowSection(Row, ("mex", "amex"), "train_mex"),
    "twosm_rows": RowSection(Row, ("twosm", "mex", "amex"), "train_twosm",
                             observations=("local", "full")),
    "inpainting_rows": RowSection(InpaintingRow, ("gl", "gl_amex"), "train_inpainting"),
}
# The sections of segmentation-map rows (Row: Tables 1-2, Fig 10), what Params.rows holds.
MAP_ROW_SECTIONS = tuple(name for name, section in ROW_SECTIONS.items() if section.row is Row)


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
        """Row name -> Row of every segmentation row (the sections of Row rows)."""
        return {name: row for section in MAP_ROW_SECTIONS
                for name, row in getattr(self, section).items()}

    def row_epochs(self, name: str) -> int:
        """A row's training epochs: its own `epochs`, else train.epochs."""
        return self.row(name).epochs or self.train.epochs

    def row_batch_size(self, section: str, row: Row) -> int:
        """A row's training batch: its own batch_size, else its section's (twosm_rows:
        twosm.batch_size; the other sections of Row rows: train.batch_size)."""
        return row.batch_size or (self.twosm.batch_size if section == "twosm_rows"
                                  else self.train.batch_size)

    def row_batch(self, name: str) -> int:
        """The training batch of segmentation row `name` (row_batch_size in its section)."""
        row = self.row(name)   # an unknown name: the one-line error
        section = next(section for section in MAP_ROW_SECTIONS
                       if name in getattr(self, section))
        return self.row_batch_size(section, row)

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
        if not expands(row.loss):
            return None
        return int(lookup(self, row.q_from))


def lookup(params: Params, dotted: str):
    """The value of a dotted params key (e.g. q_overrides.nyu), or None if there is none."""
    node = params
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return None
    return node
