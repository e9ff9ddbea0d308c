"""The two-stream structure model of Hong et al. 2018 (TwoSM, the paper's Table 2): a shared
encoder, an object-mask stream (sigmoid, BCE) and a context stream (per-class softmax, NLL), a
multiscale LSGAN. Two builds (params `twosm.build`, docs/twosm.md), each difference a switch:

- `simplified` (our first model, from the papers' text and SPEC.md): NLL over the whole
  observation, the LSGAN on the context stream, test labels = the context stream's argmax,
  pix2pixHD's encoder / decoders with instance norm, object boxes only.
- `hong` (Hong et al.'s code, xcyan/neurips18_hierchical_image_manipulation, at our sizes): NLL
  inside the box enlarged 1.2-1.5x (their MaskReconLoss), the LSGAN on the mask stream gated by
  that box (their use_output_gate, which also gates the BCE), l_t painted where the mask
  stream > 0.5, U-Net skips from the encoder into the context stream, batch norm, 30 % of
  the training boxes drawn at random with the last label and no object (their prob_bg), and
  the local window jittered by ±1/4 of the box's longer side (their crop_box_with_margin).

Observations: `local` (TwoSM) is a square window around the box (side = min(2 × the box's
longer side, min(W, H)), never smaller than the box; jittered in training (twosm.crop_jitter:
anywhere that still holds the box, or Hong et al.'s ±1/4 of the longer side), centred at test),
resized (nearest) to `crop_size`; `full` (TwoSM+Full) is the whole incomplete map. The model
sees the same conditioning as the pix2pixHD rows (one-hot Su, instance edges, box mask) of its
observation. Its output is cat(sigmoid(mask logit), softmax(context logits)): probabilities,
so Eq 5's fusion applies to both streams, and MEx / A-MEx (pipeline.models.losses) score the fused
context stream in both builds (the MExGAN paper's reading). Test labels are taken in the box,
resized back to the window (bilinear probabilities) and pasted into the map -- no colour round
trip.

Here: the network and the loss plug-in; the views of a map (window geometry, batches, the
training task) are pipeline.models.twosm_views', test-time prediction
pipeline.models.twosm_prediction's.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.config.sections import TWOSM_BUILDS, TWOSM_CHOICES
from pipeline.models.losses import (fake_and_real_scales, frozen, lsgan,
                                    multiscale_discriminator_terms)
from pipeline.models.networks import MultiscaleDiscriminator, decoder_layers, encoder_layers
from pipeline.models.twosm_views import TwoStreamBatch, box_masks

SIMPLIFIED = TWOSM_BUILDS["simplified"]

#---------------------------------------------------------------------------------------------
# Network


def skip_decoder_layers(width: int, n_upsampling: int, out_channels: int) -> list:
    """decoder_layers whose transposed convs after the first take twice the channels: the
    decoder's features with the encoder's of the same resolution concatenated in front (Hong et
    al.'s skips into the context stream: every up-sampling stage but the one after the
    bottleneck)."""
    layers = []
    for stage in range(n_upsampling):
        inputs = 2 * width if stage else width
        layers += [nn.ConvTranspose2d(inputs, width // 2, 3, stride=2, padding=1,
                                      output_padding=1),
                   nn.InstanceNorm2d(width // 2), nn.ReLU(True)]
        width //= 2
    return layers + [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7)]


def use_batch_norm(module: nn.Module) -> None:
    """Every InstanceNorm2d inside `module` replaced by a BatchNorm2d of its width (Hong et
    al.'s norm_layer batch)."""
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm2d):
            setattr(module, name, nn.BatchNorm2d(child.num_features))
        else:
            use_batch_norm(child)


class TwoStreamGenerator(nn.Module):
    """Shared encoder (c7s1-ngf, n_downsampling stride-2 convs, n_blocks residual blocks) and two
    decoders (n_downsampling transposed convs, c7s1): the object mask (1 channel, sigmoid) and
    the context labels (num_labels channels, softmax).

    Switches (params twosm): norm instance | batch; encoder_skips: the encoder's outputs
    concatenated into the context stream (skip_decoder_layers); label_rule: how predict_labels
    reads the test labels. A generator whose switches are not the simplified build's carries
    them in its state_dict (buffer `build_settings`), and load_state_dict rebuilds the network
    to the file's switches: a saved model reloads as what it was trained as.

    x: (N, in_channels, S, S) -> (N, 1 + num_labels, S, S) probabilities."""

    def __init__(self, in_channels: int, num_labels: int, ngf: int = 64,
                 n_downsampling: int = 4, n_blocks: int = 9, *, norm: str = SIMPLIFIED["norm"],
                 encoder_skips: bool = SIMPLIFIED["encoder_skips"],
                 label_rule: str = SIMPLIFIED["labels"]):
        super().__init__()
        self.multiple = 2 ** n_downsampling
        self.sizes = (in_channels, num_labels, ngf, n_downsampling, n_blocks)
        self._build(norm, encoder_skips, label_rule)

    def _build(self, norm: str, encoder_skips: bool, label_rule: str) -> None:
        if norm not in TWOSM_CHOICES["norm"] or label_rule not in TWOSM_CHOICES["labels"]:
            raise ValueError(f"TwoSM norm {norm!r} / label rule {label_rule!r}: expected one of "
                             f"{TWOSM_CHOICES['norm']} / {TWOSM_CHOICES['labels']}")
        in_channels, num_labels, ngf, n_downsampling, n_blocks = self.sizes
        self.norm, self.encoder_skips, self.label_rule = norm, bool(encoder_skips), label_rule
        width = ngf * 2 ** n_downsampling
        self.encoder = nn.Sequential(*encoder_layers(in_channels, ngf, n_downsampling, n_blocks))
        self.mask_stream = nn.Sequential(*decoder_layers(width, n_downsampling, 1))
        context = skip_decoder_layers if encoder_skips else decoder_layers
        self.context_stream = nn.Sequential(*context(width, n_downsampling, num_labels))
        if norm == "batch":
            use_batch_norm(self)
        self._buffers.pop("build_settings", None)
        if self.settings() != (SIMPLIFIED["norm"], SIMPLIFIED["encoder_skips"],
                               SIMPLIFIED["labels"]):
            self.register_buffer("build_settings", torch.tensor(
                [TWOSM_CHOICES["norm"].index(norm), int(encoder_skips),
                 TWOSM_CHOICES["labels"].index(label_rule)]))

    def settings(self) -> tuple:
        """(norm, encoder_skips, label_rule)."""
        return self.norm, self.encoder_skips, self.label_rule

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """nn.Module.load_state_dict, after rebuilding the network to the switches the state
        carries (`build_settings`; none: the simplified build's)."""
        code = state_dict.get("build_settings")
        wanted = ((SIMPLIFIED["norm"], SIMPLIFIED["encoder_skips"], SIMPLIFIED["labels"])
                  if code is None else (TWOSM_CHOICES["norm"][int(code[0])], bool(code[1]),
                                        TWOSM_CHOICES["labels"][int(code[2])]))
        if wanted != self.settings():
            device = next(self.parameters()).device
            self._build(*wanted)
            self.to(device)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, x):
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"TwoSM input {tuple(x.shape[-2:])} (H, W) is not a multiple of "
                             f"{self.multiple} (2**n_downsampling)")
        if not self.encoder_skips:
            shared = self.encoder(x)
            return torch.cat([torch.sigmoid(self.mask_stream(shared)),
                              torch.softmax(self.context_stream(shared), 1)], 1)
        shared, features = x, []
        for layer in self.encoder:       # features: each ReLU's output, full size .. bottleneck
            shared = layer(shared)
            if isinstance(layer, nn.ReLU):
                features.append(shared)
        context, stage = shared, 0
        for layer in self.context_stream:
            if isinstance(layer, nn.ConvTranspose2d):
                if stage:                # the encoder's features at this stage's resolution
                    context = torch.cat([features[-1 - stage], context], 1)
                stage += 1
            context = layer(context)
        return torch.cat([torch.sigmoid(self.mask_stream(shared)),
                          torch.softmax(context, 1)], 1)


#---------------------------------------------------------------------------------------------
# Loss plug-in


EPS = 1e-7


class TwoStreamLoss(nn.Module):
    """TwoSM's objective on the raw output: λ_mask · BCE(object mask) + λ_context ·
    NLL(context labels) + λ_gan · multiscale LSGAN on (condition, one stream); the D terms carry
    pix2pixHD's ½ (Hong et al.: 0.5 real + 0.5 fake). Output / target layout: channel 0 the
    object mask, 1.. the labels.

    Switches (params twosm, Hong et al.'s values in brackets): context_loss view | enlarged_box
    (the NLL's mean over the pixels of the batch's enlarged boxes only: MaskReconLoss, which
    ignores the rest); discriminator context | mask (D scores (condition, mask stream) against
    (condition, GT object mask)); mask_gate (the mask stream, and every input of a mask-stream D,
    times the enlarged box: use_output_gate)."""

    def __init__(self, condition_channels: int, num_labels: int, *, ndf=64, n_layers=3,
                 num_d=2, lambda_gan=0.1, lambda_mask=1.0, lambda_context=1.0,
                 context_loss: str = SIMPLIFIED["context_loss"],
                 discriminator: str = SIMPLIFIED["discriminator"],
                 mask_gate: bool = SIMPLIFIED["mask_gate"]):
        super().__init__()
        for key, value in (("context_loss", context_loss), ("discriminator", discriminator)):
            if value not in TWOSM_CHOICES[key]:
                raise ValueError(f"TwoSM {key} {value!r}: expected one of {TWOSM_CHOICES[key]}")
        scored = num_labels if discriminator == "context" else 1
        self.discriminator = MultiscaleDiscriminator(condition_channels + scored, ndf,
                                                     n_layers, num_d)
        self.lambda_gan, self.lambda_mask, self.lambda_context = \
            lambda_gan, lambda_mask, lambda_context
        self.context_loss, self.scores, self.mask_gate = context_loss, discriminator, mask_gate

    @staticmethod
    def enlarged(batch: TwoStreamBatch, like: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W): 1 inside each sample's enlarged box."""
        if len(batch.enlarged_boxes) != like.shape[0]:
            raise ValueError("the TwoSM batch has no enlarged boxes: its observation must draw "
                             "them (Observation(enlarged_boxes=True))")
        return box_masks(batch.enlarged_boxes, *like.shape[-2:], like.device)

    def gated_mask(self, batch, generated) -> torch.Tensor:
        """The mask stream, times the enlarged box when mask_gate is on."""
        mask = generated[:, :1]
        return mask * self.enlarged(batch, mask) if self.mask_gate else mask

    def scored_pair(self, batch, generated) -> tuple:
        """(condition, fake, real) that D sees: the context stream and the target's labels, or
        the (gated) mask stream and the GT object mask, with the condition gated alike."""
        if self.scores == "context":
            return batch.condition, generated[:, 1:], batch.target[:, 1:]
        fake, real, condition = self.gated_mask(batch, generated), batch.target[:, :1], \
            batch.condition
        if self.mask_gate:
            gate = self.enlarged(batch, real)
            real, condition = real * gate, condition * gate
        return condition, fake, real

    def _fake_and_real_scales(self, batch, generated) -> tuple:
        """D's output for (condition, fake) and (condition, real)."""
        return fake_and_real_scales(self.discriminator, *self.scored_pair(batch, generated))

    def context_nll(self, batch, context) -> torch.Tensor:
        """NLL of the context probabilities: the mean over the view, or over the pixels of
        the enlarged boxes (context_loss enlarged_box)."""
        log_probabilities = torch.log(context.clamp_min(EPS))
        truth = batch.target[:, 1:].argmax(1)
        if self.context_loss == "view":
            return F.nll_loss(log_probabilities, truth)
        region = self.enlarged(batch, context)[:, 0]
        per_pixel = F.nll_loss(log_probabilities, truth, reduction="none")
        return (per_pixel * region).sum() / region.sum()

    def _generator_terms(self, batch, generated, fake_scales) -> dict:
        mask = self.gated_mask(batch, generated)
        bce = F.binary_cross_entropy(mask.clamp(EPS, 1 - EPS), batch.target[:, :1])
        nll = self.context_nll(batch, generated[:, 1:])
        adversarial = sum(lsgan(scale[-1], True) for scale in fake_scales)
        return {"G_mask": self.lambda_mask * bce, "G_context": self.lambda_context * nll,
                "G_adv": self.lambda_gan * adversarial}

    def generator_terms(self, batch, generated, fused) -> dict:
        condition, fake, _ = self.scored_pair(batch, generated)
        with frozen(self.discriminator):
            scales = self.discriminator(torch.cat([condition, fake], 1))
        return self._generator_terms(batch, generated, scales)

    def discriminator_terms(self, batch, generated, fused) -> dict:
        return multiscale_discriminator_terms(
            *self._fake_and_real_scales(batch, generated.detach()))

    def joint_terms(self, batch, generated, fused) -> tuple:
        """(generator_terms, discriminator_terms) from one D pass over fake and real (the
        joint step of pipeline.training.trainer.train)."""
        fake_scales, real_scales = self._fake_and_real_scales(batch, generated)
        return (self._generator_terms(batch, generated, fake_scales),
                multiscale_discriminator_terms(fake_scales, real_scales))
