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
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.config import TWOSM_BUILDS, TWOSM_CHOICES
from pipeline.data.boxes import object_mask
from pipeline.data.inputs import (EditBox, EditTask, GanBatch, condition_tensor, edit_inputs,
                                 instance_edges)
from pipeline.models.losses import (fake_and_real_scales, frozen, lsgan,
                                    multiscale_discriminator_terms)
from pipeline.models.networks import MultiscaleDiscriminator, decoder_layers, encoder_layers

OBSERVATIONS = ("local", "full")
# Hong et al.'s loss region: the box enlarged by a ratio drawn uniformly from this range per
# training sample (their min_ctx_ratio / max_ctx_ratio, get_soft_bbox).
CONTEXT_RATIOS = (1.2, 1.5)
# Hong et al.'s background boxes: each side drawn from [128, 256) px of Cityscapes' 2048 px
# wide maps (min_box_size / max_box_size): these fractions of the map width.
BACKGROUND_BOX_SIDES = (1 / 16, 1 / 8)
SIMPLIFIED = TWOSM_BUILDS["simplified"]

#---------------------------------------------------------------------------------------------
# Geometry (pure functions on (x1, y1, x2, y2) half-open boxes)


CROP_JITTERS = ("within", "quarter")   # twosm.crop_jitter (local_window)


def local_window(box, width: int, height: int, offset=None, jitter: str = "within"):
    """The local observation window of a box: a square of side min(2 × longer side, min(W, H)),
    widened to the box where the box is larger (then it is not square), inside the image.
    offset=None centres it on the box (clamped to the image); offset=(u, v) in [0, 1]² is the
    training jitter: `within` places the window anywhere that still contains the box (up to
    about ±1/2 of the box's longer side from the centre); `quarter` (Hong et al.'s
    crop_box_with_margin at margin 2) moves the centred window by (2u − 1, 2v − 1) × 1/4 of
    min(longer side, min(W, H)), then clamps it as above."""
    if jitter not in CROP_JITTERS:
        raise ValueError(f"unknown crop jitter {jitter!r} ({', '.join(CROP_JITTERS)})")
    x1, y1, x2, y2 = box
    side = min(2 * max(x2 - x1, y2 - y1), min(width, height))
    window_w, window_h = max(side, x2 - x1), max(side, y2 - y1)
    # left edge range that keeps the box inside the window and the window inside the image
    low_x, high_x = max(0, x2 - window_w), min(x1, width - window_w)
    low_y, high_y = max(0, y2 - window_h), min(y1, height - window_h)
    if offset is None:
        left = min(max((x1 + x2 - window_w) // 2, low_x), high_x)
        top = min(max((y1 + y2 - window_h) // 2, low_y), high_y)
    elif jitter == "quarter":
        reach = min(max(x2 - x1, y2 - y1), min(width, height)) / 4
        left = int(round((x1 + x2 - window_w) / 2 + (2 * offset[0] - 1) * reach))
        top = int(round((y1 + y2 - window_h) / 2 + (2 * offset[1] - 1) * reach))
        left, top = min(max(left, low_x), high_x), min(max(top, low_y), high_y)
    else:
        left = low_x + int(round(offset[0] * (high_x - low_x)))
        top = low_y + int(round(offset[1] * (high_y - low_y)))
    return (left, top, left + window_w, top + window_h)


def box_in_window(box, window, size: int):
    """The box in the coordinates of the window resized to size x size (never empty)."""
    wx1, wy1, wx2, wy2 = window
    scale_x, scale_y = size / (wx2 - wx1), size / (wy2 - wy1)
    x1, y1 = int(np.floor((box[0] - wx1) * scale_x)), int(np.floor((box[1] - wy1) * scale_y))
    x2, y2 = int(np.ceil((box[2] - wx1) * scale_x)), int(np.ceil((box[3] - wy1) * scale_y))
    return (x1, y1, max(x2, x1 + 1), max(y2, y1 + 1))


def resize_nearest(array: np.ndarray, window, size: int) -> np.ndarray:
    """array[..., window] resized to (size, size) by nearest neighbour (labels, ids)."""
    wx1, wy1, wx2, wy2 = window
    rows = wy1 + (np.arange(size) * (wy2 - wy1)) // size
    cols = wx1 + (np.arange(size) * (wx2 - wx1)) // size
    return array[..., rows[:, None], cols[None, :]]


def enlarged_box(box, ratio: float, width: int, height: int):
    """Hong et al.'s soft box (get_soft_bbox): the box scaled by `ratio` about its centre,
    rounded outward and clipped to the width x height view."""
    x1, y1, x2, y2 = box
    half_w, half_h = (x2 - x1) * ratio / 2, (y2 - y1) * ratio / 2
    centre_x, centre_y = (x1 + x2) / 2, (y1 + y2) / 2
    return (max(math.floor(centre_x - half_w), 0), max(math.floor(centre_y - half_h), 0),
            min(math.ceil(centre_x + half_w), width), min(math.ceil(centre_y + half_h), height))


def background_box(rng: np.random.Generator, width: int, height: int):
    """A random box for Hong et al.'s background samples (sample_bg_from_full): each side
    uniform in BACKGROUND_BOX_SIDES x width (at most the map's side), anywhere in the map."""
    low = max(1, round(BACKGROUND_BOX_SIDES[0] * width))
    high = max(low + 1, round(BACKGROUND_BOX_SIDES[1] * width))
    box_w = min(int(rng.integers(low, high)), width)
    box_h = min(int(rng.integers(low, high)), height)
    x1, y1 = int(rng.integers(0, width - box_w + 1)), int(rng.integers(0, height - box_h + 1))
    return (x1, y1, x1 + box_w, y1 + box_h)


def box_masks(boxes, height: int, width: int, device) -> torch.Tensor:
    """(N, 1, height, width) float masks, 1 inside each (x1, y1, x2, y2) box."""
    masks = torch.zeros(len(boxes), 1, height, width, device=device)
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        masks[index, :, y1:y2, x1:x2] = 1
    return masks


#---------------------------------------------------------------------------------------------
# Batches


class Observation:
    """Turns (image, EditBox) into the model's view: the window, the box in it, and the
    conditioning / targets at the model's size. Its training draws (TwoStreamTask):
    `enlarged_boxes` -- an enlarged box per sample (Hong et al.'s loss region / mask gate);
    `background_boxes` -- the share of random background boxes (Hong et al.'s prob_bg);
    `crop_jitter` -- how far a training window moves from the centred one (local_window)."""

    def __init__(self, kind: str, crop_size: int, *, enlarged_boxes: bool = False,
                 background_boxes: float = 0.0, crop_jitter: str = "within"):
        if kind not in OBSERVATIONS:
            raise ValueError(f"unknown TwoSM observation {kind!r} ({', '.join(OBSERVATIONS)})")
        if crop_jitter not in CROP_JITTERS:
            raise ValueError(f"unknown crop jitter {crop_jitter!r} ({', '.join(CROP_JITTERS)})")
        self.kind, self.crop_size = kind, crop_size
        self.enlarged_boxes, self.background_boxes = enlarged_boxes, background_boxes
        self.crop_jitter = crop_jitter

    def window(self, box, width, height, offset=None):
        if self.kind == "full":
            return (0, 0, width, height)
        return local_window(box, width, height, offset, self.crop_jitter)

    def view(self, labels, instances, edit: EditBox, offset=None):
        """(incomplete labels, edited instances, box mask, GT labels, GT object mask, box) of the
        observation at model size."""
        height, width = labels.shape
        window = self.window(edit.box, width, height, offset)
        object_pixels = np.zeros(labels.shape, dtype=bool)
        x1, y1, x2, y2 = edit.box
        object_pixels[y1:y2, x1:x2] = object_mask(labels, instances, edit.box, edit.label)
        if self.kind == "full":
            box = edit.box
            view_labels, view_instances, view_object = labels, instances, object_pixels
        else:
            box = box_in_window(edit.box, window, self.crop_size)
            view_labels = resize_nearest(labels, window, self.crop_size)
            view_instances = resize_nearest(instances, window, self.crop_size)
            view_object = resize_nearest(object_pixels, window, self.crop_size)
        incomplete, edited_instances, mask = edit_inputs(
            view_labels, view_instances, EditBox(edit.image, edit.label, box))
        return incomplete, edited_instances, mask, view_labels, view_object, box


@dataclasses.dataclass
class TwoStreamBatch(GanBatch):
    """GanBatch with, per sample, the enlarged box (x1, y1, x2, y2) in the view: Hong et al.'s
    loss region of the context NLL and gate of the mask stream; empty: none drawn."""
    enlarged_boxes: tuple = ()

    def map_tensors(self, function) -> "TwoStreamBatch":
        return dataclasses.replace(self, condition=function(self.condition),
                                   target=function(self.target),
                                   mask=None if self.mask is None else function(self.mask))


def twosm_batch(split, spec, observation: Observation, indices, edits, flips, offsets,
                device, *, ratios=None, backgrounds=None, with_target=True) -> TwoStreamBatch:
    """The batch of the two-stream model: condition = one-hot Su + edges + box mask of the
    observation; target = cat(GT object mask, one-hot GT labels); mask = the box.
    ratios: per sample, the enlargement of its box (enlarged_boxes), or None; backgrounds: per
    sample, True for a background box (Hong et al.: the object target is empty)."""
    incompletes, edges, masks, targets, boxes, enlarged = [], [], [], [], [], []
    backgrounds = backgrounds or [False] * len(indices)
    for index, edit, flip, offset, background in zip(indices, edits, flips, offsets,
                                                     backgrounds):
        labels, instances = split.labels[index], split.instances[index]
        if flip:
            labels, instances = labels[:, ::-1], instances[:, ::-1]
        incomplete, edited, mask, truth, obj, box = observation.view(labels, instances, edit,
                                                                     offset)
        if background:
            obj = np.zeros_like(obj)
        incompletes.append(incomplete)
        edges.append(instance_edges(edited))
        masks.append(mask)
        if with_target:  # prediction needs none (its one-hot would be C x the view's size)
            one_hot = np.eye(spec.num_labels, dtype=np.float32)[truth].transpose(2, 0, 1)
            targets.append(np.concatenate([obj[None].astype(np.float32), one_hot]))
        boxes.append(box)
        if ratios is not None:
            enlarged.append(enlarged_box(box, ratios[len(enlarged)], truth.shape[1],
                                         truth.shape[0]))
    incomplete = torch.from_numpy(np.stack(incompletes)).long().to(device)
    mask = torch.from_numpy(np.stack(masks)).to(device)
    condition = condition_tensor(incomplete, torch.from_numpy(np.stack(edges)).to(device), mask,
                                 spec.num_labels)
    return TwoStreamBatch(condition=condition,
                          target=(torch.from_numpy(np.stack(targets)).to(device)
                                  if with_target else None),
                          mask=mask.unsqueeze(1), boxes=tuple(boxes),
                          enlarged_boxes=tuple(enlarged))


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


#---------------------------------------------------------------------------------------------
# Training data and test-time prediction


class SampleDraws(NamedTuple):
    """A TwoSM training sample's draws beyond EditTask's box and flip."""
    offset: tuple                  # the local window's jitter (u, v) in [0, 1]²
    ratio: float | None            # the enlargement of the box (Observation.enlarged_boxes)
    background: EditBox | None     # a background box replacing the sample's box


class TwoStreamTask(EditTask):
    """TwoSM training data: EditTask's random eligible box per image per epoch, random flip and
    shuffled order, plus per sample a random window offset (the local observation's jitter)
    and, when the observation says so, an enlargement ratio in CONTEXT_RATIOS and a background
    box instead of the object box (Hong et al.'s prob_bg: the observation's background_boxes
    share; the box gets the last label, Hong et al.'s label_nc − 1, and an empty object target),
    all drawn from (seed, epoch)."""

    def __init__(self, split, spec, train_boxes: dict, observation: Observation, *,
                 batch_size: int, flip: bool, seed: int):
        super().__init__(split, spec, train_boxes, batch_size=batch_size, flip=flip, seed=seed)
        self.observation = observation

    def plan_extra(self, indices, rng):
        """Each sample's SampleDraws (only the offset unless the observation asks for more:
        the simplified build draws what it always drew)."""
        height, width = self.split.labels.shape[1:]
        draws = []
        for index in indices:
            offset = (float(rng.random()), float(rng.random()))
            ratio = (float(rng.uniform(*CONTEXT_RATIOS)) if self.observation.enlarged_boxes
                     else None)
            background = None
            if self.observation.background_boxes and \
                    rng.random() < self.observation.background_boxes:
                background = EditBox(self.split.names[index], self.spec.num_labels - 1,
                                     background_box(rng, width, height))
            draws.append(SampleDraws(offset, ratio, background))
        return draws

    def build(self, plan) -> TwoStreamBatch:
        indices, edits, flips, draws = plan
        edits = [d.background or edit for edit, d in zip(edits, draws)]
        ratios = [d.ratio for d in draws] if self.observation.enlarged_boxes else None
        return twosm_batch(self.split, self.spec, self.observation, indices, edits, flips,
                           [d.offset for d in draws], "cpu", ratios=ratios,
                           backgrounds=[d.background is not None for d in draws])


class WindowPrediction(NamedTuple):
    """A TwoSM generator's labels for one edit, in its observation's window (wx1, wy1, wx2, wy2)
    of the map: `context` the context stream's argmax, `painted` Hong et al.'s rule (l_t where
    the mask stream > 0.5, the context argmax elsewhere); both resized back to the window."""
    window: tuple
    context: np.ndarray
    painted: np.ndarray


def bilinear_matrix(out_size: int, in_size: int) -> torch.Tensor:
    """(out_size, in_size) weights of 1-D bilinear resampling as F.interpolate does it with
    align_corners=False: output pixel i reads source position (i + 0.5) · in/out − 0.5,
    clamped to [0, in − 1], from its two neighbours."""
    source = ((torch.arange(out_size, dtype=torch.float64) + 0.5) * (in_size / out_size)
              - 0.5).clamp(min=0)
    low = source.floor().long().clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    frac = (source - low).clamp(0, 1)
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)
    weights.index_put_((rows, low), 1 - frac, accumulate=True)
    weights.index_put_((rows, high), frac, accumulate=True)
    return weights


def upsampled_labels(context: torch.Tensor, mask: torch.Tensor, size, rows=None, cols=None,
                     chunk_pixels: int = 1 << 18, dtype=np.int64) -> tuple:
    """(context argmax, mask > 0.5) of the (C, h, w) context logits and (h, w) mask stream,
    resampled bilinearly to `size` = (H, W), over rows[0]:rows[1] and cols[0]:cols[1] of that
    grid only (default: all of it). The resampling goes band by band (about chunk_pixels output
    pixels × C at a time), so a large map never holds all its C-channel logits at once; at the
    logits' own size nothing is resampled. The argmax is held as `dtype` (the editor: its map's
    id type, not 8 bytes a pixel)."""
    out_h, out_w = size
    rows, cols = rows or (0, out_h), cols or (0, out_w)
    if (out_h, out_w) == tuple(context.shape[-2:]):
        return (context[:, rows[0]:rows[1], cols[0]:cols[1]].argmax(0).cpu().numpy()
                .astype(dtype, copy=False),
                mask[rows[0]:rows[1], cols[0]:cols[1]].cpu().numpy() > 0.5)
    stacked = torch.cat([context, mask[None]]).double()
    row_weights = bilinear_matrix(out_h, stacked.shape[1])[rows[0]:rows[1]]
    col_weights = bilinear_matrix(out_w, stacked.shape[2])[cols[0]:cols[1]].T
    height, width = rows[1] - rows[0], cols[1] - cols[0]
    labels, painted = np.zeros((height, width), dtype), np.zeros((height, width), bool)
    band = max(1, chunk_pixels // max(width, 1))
    for top in range(0, height, band):
        resampled = torch.matmul(torch.matmul(row_weights[top:top + band], stacked),
                                 col_weights)
        labels[top:top + band] = resampled[:-1].argmax(0).cpu().numpy()
        painted[top:top + band] = resampled[-1].cpu().numpy() > 0.5
    return labels, painted


@torch.no_grad()
def window_logits(generator: TwoStreamGenerator, observation: Observation, labels, instances,
                  edit: EditBox, spec, device) -> tuple:
    """(window, context logits (C, h, w), mask stream (h, w)) of one edit: the generator's
    streams over its observation's window, at the model's size."""
    height, width = labels.shape
    window = observation.window(edit.box, width, height)
    batch = twosm_batch(_One(labels, instances), spec, observation, [0], [edit], [False],
                        [None], device, with_target=False)
    generated = generator(batch.condition)
    return tuple(window), generated[0, 1:], generated[0, 0]


def painted_labels(context_labels: np.ndarray, mask_on: np.ndarray, label: int,
                   spec) -> np.ndarray:
    """Hong et al.'s rule: l_t where the mask stream > 0.5, the context argmax elsewhere (for a
    background box, l_t = the last label: the context argmax throughout)."""
    painted = context_labels.copy()
    if label != spec.num_labels - 1:
        painted[mask_on] = label
    return painted


@torch.no_grad()
def predict_window(generator: TwoStreamGenerator, observation: Observation, labels, instances,
                   edit: EditBox, spec, device) -> WindowPrediction:
    """Run the generator on one edit's observation; its two label maps over the window (the
    streams resampled bilinearly to the window's size in the map, then read)."""
    window, context, mask = window_logits(generator, observation, labels, instances, edit,
                                          spec, device)
    wx1, wy1, wx2, wy2 = window
    context_window, mask_on = upsampled_labels(context, mask, (wy2 - wy1, wx2 - wx1))
    return WindowPrediction(window, context_window,
                            painted_labels(context_window, mask_on, edit.label, spec))


def edited_map(labels, prediction: WindowPrediction, window_labels: np.ndarray,
               box) -> np.ndarray:
    """The map with the box replaced by `window_labels` (one of the prediction's maps): Eq 5,
    only the box changes."""
    wx1, wy1 = prediction.window[:2]
    x1, y1, x2, y2 = box
    predicted = labels.copy()
    predicted[y1:y2, x1:x2] = window_labels[y1 - wy1:y2 - wy1, x1 - wx1:x2 - wx1]
    return predicted


def predict_label_maps(generator: TwoStreamGenerator, observation: Observation, labels,
                       instances, edit: EditBox, spec, device) -> tuple:
    """(painted, context): the edited label map under Hong et al.'s rule -- l_t where the mask
    stream > 0.5, the context stream's argmax elsewhere in the box (for a background box, l_t =
    the last label: the context argmax throughout) -- and under the context argmax alone; the
    map outside the box in both."""
    prediction = predict_window(generator, observation, labels, instances, edit, spec, device)
    return tuple(edited_map(labels, prediction, window_labels, edit.box)
                 for window_labels in (prediction.painted, prediction.context))


def predict_labels(generator: TwoStreamGenerator, observation: Observation, labels, instances,
                   edit: EditBox, spec, device) -> np.ndarray:
    """The edited label map by the generator's label rule (twosm.labels): painted_mask or
    context_argmax (predict_label_maps)."""
    return by_label_rule(generator, *predict_label_maps(generator, observation, labels,
                                                        instances, edit, spec, device))


def by_label_rule(generator: TwoStreamGenerator, painted, context):
    """`painted` or `context`, by the generator's twosm.labels switch (generators saved before
    it existed: the simplified build's)."""
    rule = getattr(generator, "label_rule", SIMPLIFIED["labels"])
    return painted if rule == "painted_mask" else context


class _One:
    """A one-image split for twosm_batch."""

    def __init__(self, labels, instances):
        self.labels, self.instances = labels[None], instances[None]
