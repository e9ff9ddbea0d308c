"""LOSSES: every loss a params row may name -> the loss plug-in class (pipeline.models) that
makes it that loss, by its dotted name, as NVlabs/edm names its losses (`loss_kwargs.class_name
= 'training.loss.EDMLoss'`, built by name when training starts). A row's loss adds its class to
what its kind always trains with (the kinds build them: pipeline.kinds.parts.loss_class).
Config validation reads it for the losses a row section allows (ROW_SECTIONS of
pipeline.config.sections) and for which rows have a q; reading it imports no network."""
from __future__ import annotations

from typing import NamedTuple


class Loss(NamedTuple):
    class_name: str   # the plug-in class, pipeline.models.<module>.<Class>
    expansion: bool   # an expansion term (levels j = 0..q): a row naming it has a q


LOSSES = {
    # L_B = λ1 L_adv + λ2 L_feat + λ3 L_perc (Eq 1-4)
    "pix2pixhd": Loss("pipeline.models.losses.Pix2PixHDLoss", expansion=False),
    # + λ4 L_MEx (Eq 6-7) / + λ4 L_A-MEx (Eq 8-9): structure and TwoSM rows
    "mex": Loss("pipeline.models.losses.MExLoss", expansion=True),
    "amex": Loss("pipeline.models.losses.AMExLoss", expansion=True),
    # TwoSM's objective (Hong et al. 2018), Table 2
    "twosm": Loss("pipeline.models.twosm.TwoStreamLoss", expansion=False),
    # GL: L_rec + α GL's context discriminator (Iizuka et al. 2017), Table 3
    "gl": Loss("pipeline.models.inpainting.GlobalLocalLoss", expansion=False),
    # GL + α λ4 L_A-MEx (reading `authors`: ExpandedContextLoss in place of GL's D)
    "gl_amex": Loss("pipeline.models.losses.AMExLoss", expansion=True),
}


def expands(loss: str) -> bool:
    """Whether loss `loss` has expansion levels j = 0..q, so a row naming it has a q."""
    return LOSSES[loss].expansion

