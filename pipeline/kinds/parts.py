"""Parts the row kinds share: the pix2pixHD generator, the loss plug-ins of a row (L_B, λ4·L_MEx,
λ4·L_A-MEx) and the frozen VGG19 of L_perc."""
from __future__ import annotations

import importlib
import logging

import torch.nn as nn

from pipeline.config.sections import Params, ProfileParams
from pipeline.config.losses import LOSSES, expands
from pipeline.models.losses import Pix2PixHDLoss
from pipeline.models.networks import VGG19_FILE, GlobalGenerator, VGG19Features, find_weights

log = logging.getLogger(__name__)


def loss_class(loss: str) -> type:
    """The plug-in class of loss `loss` (pipeline.config.losses.LOSSES names it)."""
    module, _, name = LOSSES[loss].class_name.rpartition(".")
    return getattr(importlib.import_module(module), name)


def build_generator(in_channels: int, params: Params) -> GlobalGenerator:
    m = params.model
    return GlobalGenerator(in_channels, 3, m.ngf, m.n_downsampling, m.n_blocks)


def highest_expansion(q: int, profile: ProfileParams) -> int:
    """The highest expansion level j of a row with parameter q: q under the paper's Eq 6-7
    (j = 0..q, q+1 discriminators / masks), q - 1 under the authors' range(q) (profile
    discriminators: q); -1 means no expansion term (the authors' q = 0)."""
    return q if profile.discriminators == "q_plus_one" else q - 1


def expansion_loss(loss: str, condition_channels: int, top_level: int, params: Params,
                   **image) -> nn.Module:
    """λ4·L_MEx (loss=mex) or λ4·L_A-MEx (amex) over the expansion levels j = 0..top_level,
    with the model's PatchGAN sizes (MEx: the params' crop path, train.mex_crop_canvas).
    `image`: image_channels / channels for the TwoSM rows."""
    how = {"crop_canvas": params.train.mex_crop_canvas} if loss == "mex" else {}
    return loss_class(loss)(condition_channels, top_level=top_level, alpha=params.alpha,
                                  beta=params.beta, ndf=params.model.ndf,
                                  n_layers=params.model.n_layers_d,
                                  lambda_mex=params.loss.lambda_mex, **how, **image)


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
                 vgg: VGG19Features | None, profile: ProfileParams | None = None) -> list:
    """The loss plug-ins of a row: L_B, plus λ4·L_MEx (loss=mex) or λ4·L_A-MEx (loss=amex)
    with parameter q, with the settings of `profile` (default: the top-level `profile`): λ2,
    λ3, what L_B scores, how many expansion levels (highest_expansion)."""
    m, lp = params.model, params.loss
    profile = profile or params.row_profile()
    plugins = [Pix2PixHDLoss(in_channels, vgg, ndf=m.ndf, n_layers=m.n_layers_d, num_d=m.num_d,
                             lambda_adv=lp.lambda_adv, lambda_feat=profile.lambda_feat,
                             lambda_perc=profile.lambda_perc,
                             vgg_layer_weights=lp.vgg_layer_weights,
                             on=profile.basic_loss_on)]
    if expands(loss):
        top_level = highest_expansion(q, profile)
        if top_level >= 0:
            plugins.append(expansion_loss(loss, in_channels, top_level, params))
    elif loss != "pix2pixhd":
        raise ValueError(f"unknown loss {loss!r} (pix2pixhd, mex, amex)")
    return plugins


def global_generator(state: dict) -> GlobalGenerator:
    """The pix2pixHD global generator of a model file (structure rows, translators)."""
    m = state["model"]
    return GlobalGenerator(state["in_channels"], 3, m["ngf"], m["n_downsampling"], m["n_blocks"])
