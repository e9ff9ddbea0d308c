"""params.yaml checked and built into Params: unknown keys, wrong types and bad values are
one-line errors (ParamsError) naming the key."""
from __future__ import annotations

import dataclasses
import math
import re
import typing

from pipeline.data.boxes import BOX_CONVENTIONS, BOX_RULES
from pipeline.data.sets import DATASETS, SPECS
from pipeline.config.sections import (DATA_SOURCES, MAP_ROW_SECTIONS, ROW_SECTIONS, DataParams,
                                      DatasetParams, EvaluateParams, HuevParams,
                                      InpaintingParams, LossParams, ModelParams, Params,
                                      ParamsError, ProfileParams, TWOSM_BUILDS, TWOSM_CHOICES,
                                      TrainParams, TranslatorParams, TwoSMParams, data_sources)
from pipeline.config.losses import expands


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
        inpainting=_inpainting(raw["inpainting"]),
        huev=_huev(raw["huev"]),
        **{section: {name: _build(rows.row, value, f"{section}.{name}")
                     for name, value in _mapping(raw[section], section).items()}
           for section, rows in ROW_SECTIONS.items()},
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
    for group in MAP_ROW_SECTIONS:
        section = ROW_SECTIONS[group]
        for name, row in getattr(p, group).items():
            _check(isinstance(name, str) and ROW_NAME.fullmatch(name) is not None,
                   f"{group}.{name}", name, "a row name of letters, digits, '.', '_', '-' "
                   "(it names folders)")
            _check(row.dataset in p.datasets, f"{group}.{name}.dataset", row.dataset,
                   f"a dataset of `datasets`: {', '.join(p.datasets)}")
            allowed = section.losses
            _check(row.loss in allowed, f"{group}.{name}.loss", row.loss, " or ".join(allowed))
            _check(row.profile == "" or row.profile in p.profiles, f"{group}.{name}.profile",
                   row.profile, f"empty (the top-level profile) or a name in `profiles`: "
                   f"{', '.join(p.profiles)}")
            if section.observations:
                _check(row.observation in section.observations, f"{group}.{name}.observation",
                       row.observation, " or ".join(section.observations))
            else:
                _check(row.observation == "", f"{group}.{name}.observation", row.observation,
                       "empty: only TwoSM rows have an observation")
            _check(isinstance(row.epochs, int) and row.epochs >= 0, f"{group}.{name}.epochs",
                   row.epochs, "an integer >= 1, or 0 for train.epochs")
            _check(isinstance(row.batch_size, int) and row.batch_size >= 0,
                   f"{group}.{name}.batch_size", row.batch_size,
                   "an integer >= 1, or 0 for its section's batch")
            if row.size_threshold:
                dataset = p.datasets[row.dataset]
                lowest = dataset.box_list_threshold or dataset.size_threshold
                _check(lowest <= row.size_threshold < 1, f"{group}.{name}.size_threshold",
                       row.size_threshold, f"0 (the dataset's) or a fraction >= datasets."
                       f"{row.dataset}.box_list_threshold ({lowest:g}; boxes.csv lists no "
                       "smaller box)")
            if expands(row.loss):
                q_names = ["q"] + [f"q_overrides.{k}" for k in p.q_overrides] + \
                    [f"q_sweep.{k}" for k in p.q_sweep]
                _check(row.q_from in q_names, f"{group}.{name}.q_from", row.q_from,
                       f"one of {', '.join(q_names)}")
            else:
                _check(row.q_from == "", f"{group}.{name}.q_from", row.q_from,
                       "empty: a row without an expansion loss has no q")
    inpainting_losses = ROW_SECTIONS["inpainting_rows"].losses
    for name, row in p.inpainting_rows.items():
        _check(isinstance(name, str) and ROW_NAME.fullmatch(name) is not None,
               f"inpainting_rows.{name}", name, "a row name of letters, digits, '.', '_', '-' "
               "(it names folders)")
        _check(row.loss in inpainting_losses, f"inpainting_rows.{name}.loss", row.loss,
               " or ".join(inpainting_losses))
        _check(row.amex_reading in INPAINTING_AMEX_READINGS,
               f"inpainting_rows.{name}.amex_reading", row.amex_reading,
               " or ".join(INPAINTING_AMEX_READINGS))
        _check(expands(row.loss) or row.amex_reading == "ours",
               f"inpainting_rows.{name}.amex_reading", row.amex_reading,
               "ours: only gl_amex rows have an A-MEx reading")
        _check(row.rec_divisor in INPAINTING_REC_DIVISORS,
               f"inpainting_rows.{name}.rec_divisor", row.rec_divisor,
               " or ".join(INPAINTING_REC_DIVISORS))
    names = [name for group in ROW_SECTIONS for name in getattr(p, group)]
    overlap = sorted({name for name in names if names.count(name) > 1})
    _check(not overlap, "mex_rows", overlap, "row names unique across the row groups")


INPAINTING_AMEX_READINGS = ("ours", "authors")  # inpainting_rows.<row>.amex_reading


INPAINTING_REC_DIVISORS = ("hole", "image")     # inpainting_rows.<row>.rec_divisor


def _validate_inpainting(p: Params) -> None:
    ip = p.inpainting
    holes = {name: d.title for name, d in DATASETS.items() if d.test_masks is not None}
    _check(ip.dataset in holes, "inpainting.dataset", ip.dataset,
           f"{' or '.join(holes)} ({', '.join(holes.values())}, the paper's inpainting dataset)")
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
