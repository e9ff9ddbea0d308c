"""Model rows of the paper's tables, from params to networks: which generator, which loss
plug-ins. A row is a params entry (baselines / mex_rows / twosm_rows / inpainting_rows in
params.yaml), not code."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os

import torch
import torch.nn as nn
import yaml

from pipeline import trainer
from pipeline.boxes import box_size_passes
from pipeline.checkpoints import save_atomic
from pipeline.config import Params, ProfileParams, TrainParams, to_dict
from pipeline.datasets import get_spec, read_split
from pipeline.distributed import context_from_env
from pipeline.distributed import Context
from pipeline.inpainting import (CompletionNetwork, ExpandedContextLoss, GlobalLocalLoss,
                                 InpaintingTask, ReconstructionLoss, gl_phases, local_patch_size,
                                 mean_colour)
from pipeline.evaluation import HeldBackBoxes, HeldBackHoles
from pipeline.inputs import (EditTask, TranslationTask, check_boxes, condition_channels,
                             read_boxes)
from pipeline.losses import AMExLoss, MExLoss, Pix2PixHDLoss
from pipeline.networks import (VGG19_FILE, GlobalGenerator, VGG19Features, count_parameters,
                               find_weights)
from pipeline.twosm import Observation, TwoStreamGenerator, TwoStreamLoss, TwoStreamTask
from pipeline.model_files import (GENERATOR_FILE, RESOURCE_KEYS, RESOURCES_FILE, SUMMARY_FILE,
                                  code_commit, model_metadata)
from pipeline.atomic import write_json_atomic

log = logging.getLogger(__name__)

# The commit a run's model was trained at (next to generator.pt, .dvcignored like the
# checkpoints): a rerun that resumes from the final checkpoint at a later commit (a `dvc exp run`
# that restarts a row whose params did not change) keeps it, so generator.pt stays bit-identical.
ORIGIN_FILE = "origin.json"


def origin_commit(out_dir: str, params_hash: str, resumed: bool) -> str:
    """The commit to record in a run's model file: the one ORIGIN_FILE recorded for the same
    params when this run resumed from a checkpoint, else the code's commit now (recorded)."""
    path = os.path.join(out_dir, ORIGIN_FILE)
    if resumed and os.path.exists(path):
        try:
            with open(path) as f:
                origin = json.load(f)
            if origin.get("params_hash") == params_hash and origin.get("commit"):
                return origin["commit"]
        except (OSError, ValueError, AttributeError):
            pass
    commit = code_commit()
    write_json_atomic(path, {"params_hash": params_hash, "commit": commit})
    return commit


def build_generator(in_channels: int, params: Params) -> GlobalGenerator:
    m = params.model
    return GlobalGenerator(in_channels, 3, m.ngf, m.n_downsampling, m.n_blocks)


def build_twosm(row_name: str, params: Params):
    """(generator, loss plug-ins, observation) of a TwoSM row (Table 2): the two-stream model,
    TwoSM's objective, and λ4·L_MEx / λ4·L_A-MEx on the context stream (loss mex / amex) --
    the same plug-ins as the Pix2PixHD rows, on the label channels."""
    row = params.row(row_name)
    spec = get_spec(row.dataset)
    channels, m, t = condition_channels(spec), params.model, params.twosm
    generator = TwoStreamGenerator(channels, spec.num_labels, m.ngf, m.n_downsampling,
                                   m.n_blocks, norm=t.norm, encoder_skips=t.encoder_skips,
                                   label_rule=t.labels)
    plugins = [TwoStreamLoss(channels, spec.num_labels, ndf=m.ndf, n_layers=m.n_layers_d,
                             num_d=m.num_d, lambda_gan=t.lambda_gan, lambda_mask=t.lambda_mask,
                             lambda_context=t.lambda_context, context_loss=t.context_loss,
                             discriminator=t.discriminator, mask_gate=t.mask_gate)]
    top = highest_expansion(params.row_q(row_name), params.row_profile(row_name)) \
        if row.loss in EXPANSION_LOSSES else -1
    if top >= 0:
        plugins.append(expansion_loss(row.loss, channels, top, params,
                                      image_channels=spec.num_labels, channels=slice(1, None)))
    generator.observation = Observation(
        row.observation, t.crop_size, background_boxes=t.background_boxes,
        enlarged_boxes=t.context_loss == "enlarged_box" or t.mask_gate)
    return generator, plugins


EXPANSION_LOSSES = {"mex": MExLoss, "amex": AMExLoss}


def expansion_loss(loss: str, condition_channels: int, top: int, params: Params,
                   **image) -> nn.Module:
    """λ4·L_MEx (loss=mex) or λ4·L_A-MEx (amex) over the expansion levels j = 0..top, with
    the model's PatchGAN sizes (MEx: the params' crop path, train.mex_crop_canvas). `image`:
    image_channels / channels for the TwoSM rows."""
    how = {"crop_canvas": params.train.mex_crop_canvas} if loss == "mex" else {}
    return EXPANSION_LOSSES[loss](condition_channels, q=top, alpha=params.alpha,
                                  beta=params.beta, ndf=params.model.ndf,
                                  n_layers=params.model.n_layers_d,
                                  lambda_mex=params.loss.lambda_mex, **how, **image)


def highest_expansion(q: int, profile: ProfileParams) -> int:
    """The highest expansion index j of a row with parameter q: q under the paper's Eq 6-7
    (j = 0..q, q+1 discriminators / masks), q - 1 under the authors' range(q) (profile
    discriminators: q); -1 means no expansion term (the authors' q = 0)."""
    return q if profile.discriminators == "q_plus_one" else q - 1


PERCEPTUAL_DROPPED = ("DROPPED: no L_perc (no vgg19-dcbb9e9d.pth found; "
                      "loss.without_vgg_weights: drop)")


def build_vgg(params: Params, profile: ProfileParams | None = None) -> VGG19Features | None:
    """The frozen VGG19 of the perceptual loss, fed as the profile says (vgg_input). None when
    L_perc is off: λ3 = 0, or no weights file and loss.without_vgg_weights is `drop` (a random
    VGG19's term is inert yet costs about half a small model's step)."""
    profile = profile or params.row_profile()
    if profile.lambda_perc == 0:
        return None
    if (params.loss.without_vgg_weights == "drop"
            and find_weights(params.loss.vgg_weights_path, VGG19_FILE) is None):
        log.warning("VGG19 weights %s not found: the perceptual loss L_perc is DROPPED "
                    "(loss.without_vgg_weights: drop); give loss.vgg_weights_path to use it",
                    VGG19_FILE)
        return None
    return VGG19Features(params.loss.vgg_weights_path, profile.vgg_input)


def build_losses(loss: str, in_channels: int, params: Params, q: int | None,
                 vgg: VGG19Features, profile: ProfileParams | None = None) -> list:
    """The loss plug-ins of a row: L_B, plus λ4·L_MEx (loss=mex) or λ4·L_A-MEx (loss=amex),
    with the settings of `profile` (default: the top-level `profile`): λ2, λ3, what L_B scores,
    how many expansion levels (highest_expansion)."""
    m, lp = params.model, params.loss
    profile = profile or params.row_profile()
    plugins = [Pix2PixHDLoss(in_channels, vgg, ndf=m.ndf, n_layers=m.n_layers_d, num_d=m.num_d,
                             lambda_adv=lp.lambda_adv, lambda_feat=profile.lambda_feat,
                             lambda_perc=profile.lambda_perc,
                             vgg_layer_weights=lp.vgg_layer_weights,
                             on=profile.basic_loss_on)]
    if loss in EXPANSION_LOSSES:
        top = highest_expansion(q, profile)
        if top >= 0:
            plugins.append(expansion_loss(loss, in_channels, top, params))
    elif loss != "pix2pixhd":
        raise ValueError(f"unknown loss {loss!r} (pix2pixhd, mex, amex)")
    return plugins


def files_md5(directory: str, names) -> str:
    """One md5 over the named files (the training data a checkpoint was made from)."""
    digest = hashlib.md5()
    for name in names:
        with open(os.path.join(directory, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _usable_live_dir(live_dir: str) -> None:
    """dvclive's resume reads metrics.json and params.yaml of live_dir: a file a killed run left
    half-written is removed (it is rewritten at the next logged step)."""
    readers = {"metrics.json": json.load, "params.yaml": yaml.safe_load}
    for name, read in readers.items():
        path = os.path.join(live_dir, name)
        if os.path.exists(path):
            try:
                with open(path) as f:
                    read(f)
            except (ValueError, yaml.YAMLError, UnicodeDecodeError):
                log.warning("removing damaged dvclive file %s", path)
                os.remove(path)


def _run(params: Params, *, name: str, task, generator, losses, epochs: int, out_dir: str,
         live_dir: str, extra: dict, progress: bool, monitor=None, config: dict | None = None,
         optimiser: tuple | None = None, phases=trainer.JOINT, model_info: dict | None = None,
         no_vgg: str = "none (TwoSM: no perceptual loss)", kind: str = "structure",
         size: tuple = (0, 0)) -> dict:
    """Train one run with the one trainer and write its outputs (generator.pt last).
    config: the resolved settings a resumable checkpoint must match (default: the model, loss
    and train sections); optimiser: (lr, betas) (default: train's); model_info: extra keys of
    generator.pt (what load_generator needs to rebuild the network); kind and size (width,
    height): the model's kind and input size, for the file's `meta` (model_metadata)."""
    device = trainer.pick_device(params.train.device)
    ranks = context_from_env(device.type)  # torchrun: several ranks, rank 0 writes
    if ranks.enabled and device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    t = params.train
    os.makedirs(out_dir, exist_ok=True)
    # The final model of an earlier run goes now: a run that fails leaves no generator.pt that
    # a later stage could take for this one's (generator.pt is written last, when complete).
    for stale in (os.path.join(out_dir, GENERATOR_FILE), os.path.join(out_dir, SUMMARY_FILE),
                  os.path.join(live_dir, RESOURCES_FILE)):
        if ranks.is_main and os.path.exists(stale):
            os.remove(stale)
    # checkpoint_every (where checkpoints are written) and data_workers (who builds the same
    # batches) never change the result: not part of the configuration a checkpoint must match.
    train_params = {k: v for k, v in to_dict(params.train).items()
                    if k not in ("checkpoint_every", "data_workers")}
    if config is None:
        config = {"model": to_dict(params.model), "loss": to_dict(params.loss),
                  "train": train_params}
    fingerprint = json.dumps({"name": name, **config, "epochs": epochs, **extra,
                              "code": code_digest()}, sort_keys=True)
    lr, betas = optimiser or (t.lr, (t.beta1, t.beta2))
    # Keep the dvclive history when a checkpoint may be resumed; the trainer rewinds it to the
    # checkpoint's step (or clears it when it starts from scratch after all).
    resume = any(os.path.exists(p) for p in trainer.checkpoint_paths(out_dir))
    if resume and ranks.is_main:
        _usable_live_dir(live_dir)
    from dvclive import Live  # here: the benchmark and the GPU machine run without dvclive
    logger = (Live(live_dir, dvcyaml=None, save_dvc_exp=False, resume=resume, report=None)
              if ranks.is_main else contextlib.nullcontext(None))
    with logger as live:
        if live is not None:
            live.log_params({"row": name, **extra})
        summary = trainer.train(generator=generator, losses=losses, task=task, epochs=epochs,
                                lr=lr, betas=betas, device=device,
                                out_dir=out_dir, live=live, checkpoint_every=t.checkpoint_every,
                                log_every=t.log_every, progress=progress and ranks.is_main,
                                desc=name, fingerprint=fingerprint, ranks=ranks,
                                monitor=monitor if ranks.is_main else None,
                                eval_every=t.eval_every, phases=phases,
                                acceleration=acceleration(t), data_workers=t.data_workers)
        vgg = getattr(losses[0], "vgg", None)  # TwoSM's and GL's objectives have no VGG
        if vgg is None and isinstance(losses[0], Pix2PixHDLoss):
            no_vgg = ("none (λ3 = 0)" if losses[0].lambda_perc == 0 else PERCEPTUAL_DROPPED)
        summary.update(extra, generator_parameters=count_parameters(generator),
                       vgg_pretrained=int(vgg.pretrained) if vgg else -1,
                       vgg_source=vgg.source if vgg else no_vgg,
                       world_size=ranks.world_size)
    if not ranks.is_main:
        return summary
    resources = {k: v for k, v in summary.items() if k in RESOURCE_KEYS or k.startswith("mem_")}
    write_json_atomic(os.path.join(live_dir, RESOURCES_FILE), resources)
    write_json_atomic(os.path.join(out_dir, SUMMARY_FILE),
                      {k: v for k, v in summary.items() if k not in resources})
    observation = getattr(generator, "observation", None)
    params_hash = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    commit = origin_commit(out_dir, params_hash, resumed=summary.get("resumes", 0) > 0)
    save_atomic({"generator": generator.state_dict(), "in_channels": extra["in_channels"],
                 "model": to_dict(params.model),
                 "twosm": None if observation is None else {
                     "num_labels": generator.context_stream[-1].out_channels,
                     "observation": observation.kind, "crop_size": observation.crop_size},
                 "meta": model_metadata(kind, extra["dataset"], *size, name,
                                        extra["in_channels"], params_hash, commit),
                 **(model_info or {})},
                os.path.join(out_dir, GENERATOR_FILE))
    return summary


def code_digest() -> str:
    """md5 of the library's source (pipeline/*.py). Part of every checkpoint's fingerprint: a
    run never resumes from a checkpoint that other code wrote, so a DVC rerun after a code
    change retrains instead of keeping a model of the old code."""
    digest = hashlib.md5()
    folder = os.path.dirname(os.path.abspath(__file__))
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            digest.update(name.encode())
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def acceleration(train: TrainParams) -> trainer.Acceleration:
    """The trainer's Acceleration from the train params of the same names."""
    return trainer.Acceleration(precision=train.precision, channels_last=train.channels_last,
                                fused_adam=train.fused_adam, compile=train.compile)


def train_row(params: Params, row_name: str, data_dir: str, out_dir: str, live_dir: str,
              progress: bool = True, seed: int | None = None) -> dict:
    """Train the structure generator of one table row on its prepared dataset, with training
    seed `seed` (default: the first of params.seeds). Its tIOU / hamm on the first
    train.eval_boxes test boxes are logged as learning curves (dvclive eval/)."""
    row = params.row(row_name)
    spec = get_spec(row.dataset)
    t = params.train
    seed = params.seeds[0] if seed is None else seed
    trainer.make_deterministic(seed, t.cpu_threads, t.deterministic)
    split = read_split(os.path.join(data_dir, "train.h5"))
    boxes_path = os.path.join(data_dir, "boxes.csv")
    threshold = params.row_threshold(row_name)
    boxes = read_boxes(boxes_path, split="train")
    check_boxes(boxes_path, boxes, split, spec)
    height, width = split.labels.shape[1:]
    rule = params.data.box_rule  # boxes.csv lists boxes down to the lowest row threshold
    boxes = {name: [b for b in entries if box_size_passes(b.box, height, width, threshold, rule)]
             for name, entries in boxes.items()}
    if not any(boxes.get(name) for name in split.names):
        raise ValueError(f"{boxes_path}: no train box passes size threshold {threshold:g} "
                         f"(box rule {rule}; the prepared data has no eligible box; check "
                         f"datasets.{row.dataset}.size_threshold and rerun prepare)")
    channels = condition_channels(spec)
    q = params.row_q(row_name) if row.loss in EXPANSION_LOSSES else None
    if params.is_twosm(row_name):
        generator, losses = build_twosm(row_name, params)
        task = TwoStreamTask(split, spec, boxes, generator.observation,
                             batch_size=params.twosm.batch_size, flip=t.flip, seed=seed)
    else:
        task = EditTask(split, spec, boxes, batch_size=t.batch_size, flip=t.flip, seed=seed)
        generator = build_generator(channels, params)
        profile = params.row_profile(row_name)
        losses = build_losses(row.loss, channels, params, q, build_vgg(params, profile), profile)
    extra = {"dataset": row.dataset, "loss": row.loss, "q": -1 if q is None else q,
             "alpha": params.alpha if q is not None else -1,
             "beta": params.beta if q is not None else -1,
             "in_channels": channels, "train_images": len(task.usable), "seed": seed,
             "size_threshold": threshold, "box_rule": params.data.box_rule,
             "profile": {"name": row.profile or params.profile,
                         **to_dict(params.row_profile(row_name))},
             "observation": row.observation,
             "twosm": to_dict(params.twosm) if params.is_twosm(row_name) else None,
             "data_md5": files_md5(data_dir, ("train.h5", "boxes.csv", "test.h5",
                                              "test_boxes.csv"))}
    held_back = HeldBackBoxes(row.dataset, data_dir, t.eval_boxes, params.box_convention)
    return _run(params, name=row_name, task=task, generator=generator, losses=losses,
                epochs=params.row_epochs(row_name), out_dir=out_dir, live_dir=live_dir,
                extra=extra, progress=progress, monitor=held_back.scores,
                kind="twosm" if params.is_twosm(row_name) else "structure",
                size=split.labels.shape[:0:-1])


def train_translator(params: Params, dataset: str, data_dir: str, out_dir: str, live_dir: str,
                     progress: bool = True) -> dict:
    """Train the downstream translator G_I (colour map -> photo, pix2pixHD objective)."""
    spec = get_spec(dataset)
    t = params.train
    trainer.make_deterministic(t.seed, t.cpu_threads, t.deterministic)
    split = read_split(os.path.join(data_dir, "train.h5"))
    task = TranslationTask(split, spec, batch_size=t.batch_size, flip=t.flip, seed=t.seed)
    generator = build_generator(3, params)
    losses = build_losses("pix2pixhd", 3, params, None, build_vgg(params))
    extra = {"dataset": dataset, "loss": "pix2pixhd", "in_channels": 3,
             "profile": {"name": params.profile, **to_dict(params.row_profile())},
             "train_images": len(split.names), "data_md5": files_md5(data_dir, ("train.h5",))}
    return _run(params, name=f"translator-{dataset}", task=task, generator=generator,
                losses=losses, epochs=params.translator.epochs, out_dir=out_dir,
                live_dir=live_dir, extra=extra, progress=progress, kind="translator",
                size=split.labels.shape[:0:-1])


INPAINTING_TRAIN_KEYS = ("cpu_threads", "device", "processes", "portable", "log_every",
                         "eval_every", "eval_boxes")


def build_gl(loss: str, params: Params, height: int, width: int, reading: str = "ours"):
    """(completion network, loss plug-ins) of a Table 3 row: GL = L_rec + α·GL's adversarial
    term (global + local context discriminator); gl_amex adds α·λ4·L_A-MEx, the same AMExLoss
    plug-in as the segmentation rows, on (masked photo + hole mask, RGB photo) with the holes
    as boxes (reading `ours`), or, reading `authors`, replaces GL's local discriminator with
    one trunk shared over the expanded-mask images inside GL's one logit (ExpandedContextLoss)."""
    ip = params.inpainting
    generator = CompletionNetwork(ip.ngf, ip.n_downsampling, ip.dilations)
    if loss == "gl_amex" and reading == "authors":
        return generator, [ReconstructionLoss(ip.reconstruction),
                           ExpandedContextLoss(height, width, q=ip.q, expand_x=ip.alpha,
                                               expand_y=ip.beta, ndf=ip.ndf,
                                               global_layers=ip.global_layers,
                                               local_layers=ip.local_layers,
                                               alpha=ip.lambda_adv)]
    if reading != "ours":
        raise ValueError(f"unknown A-MEx reading {reading!r} for loss {loss!r} (ours; authors "
                         "for gl_amex)")
    plugins = [ReconstructionLoss(ip.reconstruction),
               GlobalLocalLoss(height, width, local_patch_size(width, height, ip.local_fraction),
                               ndf=ip.ndf, global_layers=ip.global_layers,
                               local_layers=ip.local_layers, alpha=ip.lambda_adv)]
    if loss == "gl_amex":
        plugins.append(AMExLoss(4, q=ip.q, alpha=ip.alpha, beta=ip.beta, ndf=ip.ndf,
                                n_layers=ip.amex_layers,
                                lambda_mex=ip.lambda_adv * ip.lambda_amex, image_channels=3))
    elif loss != "gl":
        raise ValueError(f"unknown inpainting loss {loss!r} (gl, gl_amex)")
    return generator, plugins


def train_inpainting_row(params: Params, row_name: str, data_dir: str, out_dir: str,
                         live_dir: str, progress: bool = True, seed: int | None = None) -> dict:
    """Train the completion network of one Table 3 row on the prepared facade photos with
    training seed `seed` (default: the first of params.seeds), in GL's three phases. SSIM / L1
    on the seed-679 holes of the first train.eval_boxes test images are logged as learning
    curves (dvclive eval/)."""
    row, ip, t = params.inpainting_row(row_name), params.inpainting, params.train
    seed = params.seeds[0] if seed is None else seed
    trainer.make_deterministic(seed, t.cpu_threads, t.deterministic)
    train_path = os.path.join(data_dir, "train.h5")
    split = read_split(train_path)
    height, width = split.photos.shape[1:3]
    if (width, height) != (ip.width, ip.height):
        raise ValueError(f"{train_path}: photos are {width}x{height}, params inpainting is "
                         f"{ip.width}x{ip.height} (rerun the prepare stage)")
    fill = mean_colour(split.photos)
    generator, losses = build_gl(row.loss, params, height, width, row.amex_reading)
    task = InpaintingTask(split.photos, fill=fill, hole=(ip.hole_min, ip.hole_max),
                          batch_size=ip.batch_size, flip=ip.flip, seed=seed)
    # the trainer's steps per epoch (under torchrun every rank takes its share)
    steps = Context(world_size=int(os.environ.get("WORLD_SIZE", "1"))).steps_per_epoch(len(task))
    phases = gl_phases(ip.completion_epochs * steps, ip.discriminator_epochs * steps, losses)
    amex = row.loss == "gl_amex"
    extra = {"dataset": ip.dataset, "loss": row.loss, "q": ip.q if amex else -1,
             "amex_reading": row.amex_reading if amex else "none",
             "alpha": ip.alpha if amex else -1, "beta": ip.beta if amex else -1,
             "in_channels": 4, "train_images": len(split.names), "seed": seed,
             "fill": list(fill), "phases": [[p.name, p.steps] for p in phases],
             "data_md5": files_md5(data_dir, ("train.h5", "test.h5", "test_masks.csv"))}
    config = {"inpainting": to_dict(ip),
              "train": {k: getattr(t, k) for k in INPAINTING_TRAIN_KEYS}}
    held_back = HeldBackHoles(data_dir, params, t.eval_boxes, fill)
    return _run(params, name=row_name, task=task, generator=generator, losses=losses,
                epochs=ip.epochs, out_dir=out_dir, live_dir=live_dir, extra=extra,
                progress=progress, monitor=held_back.scores, config=config,
                optimiser=(ip.lr, (ip.beta1, ip.beta2)), phases=phases,
                model_info={"model": None, "gl": {
                    "ngf": ip.ngf, "n_downsampling": ip.n_downsampling,
                    "dilations": list(ip.dilations), "fill": list(fill)}},
                no_vgg="none (GL: no perceptual loss)", kind="inpainting", size=(width, height))
