"""The two-stream structure model of Hong et al. 2018 (TwoSM, the paper's Table 2), written from
the paper's description and SPEC.md: a shared encoder, an object-mask stream (sigmoid, BCE) and
a context stream (per-class softmax, NLL), a multiscale LSGAN on the context stream.

Observations: `local` (TwoSM) is a square window around the box (side = min(2 × the box's
longer side, min(W, H)), never smaller than the box; jittered in training, centred at test),
resized (nearest) to `crop_size`; `full` (TwoSM+Full) is the whole incomplete map. The model
sees the same conditioning as the pix2pixHD rows (one-hot Su, instance edges, box mask) of its
observation. Its output is cat(sigmoid(mask logit), softmax(context logits)): probabilities,
so Eq 5's fusion applies to both streams, and MEx / A-MEx (pipeline.losses) score the fused
context stream. Test labels are the context stream's argmax in the box, resized back to the
window (bilinear probabilities) and pasted into the map — no colour round trip.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.floors import object_mask
from pipeline.inputs import EditBox, EditTask, condition_tensor, edit_inputs, instance_edges
from pipeline.losses import (GanBatch, fake_and_real_scales, frozen, lsgan,
                             multiscale_discriminator_terms)
from pipeline.networks import MultiscaleDiscriminator, decoder_layers, encoder_layers

OBSERVATIONS = ("local", "full")

#---------------------------------------------------------------------------------------------
# Geometry (pure functions on (x1, y1, x2, y2) half-open boxes)


def local_window(box, width: int, height: int, offset=None):
    """The local observation window of a box: a square of side min(2 × longer side, min(W, H)),
    widened to the box where the box is larger (then it is not square), inside the image.
    offset=None centres it on the box (clamped to the image); offset=(u, v) in [0, 1]² places it
    anywhere that still contains the box (training jitter)."""
    x1, y1, x2, y2 = box
    side = min(2 * max(x2 - x1, y2 - y1), min(width, height))
    window_w, window_h = max(side, x2 - x1), max(side, y2 - y1)
    # left edge range that keeps the box inside the window and the window inside the image
    low_x, high_x = max(0, x2 - window_w), min(x1, width - window_w)
    low_y, high_y = max(0, y2 - window_h), min(y1, height - window_h)
    if offset is None:
        left = min(max((x1 + x2 - window_w) // 2, low_x), high_x)
        top = min(max((y1 + y2 - window_h) // 2, low_y), high_y)
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


#---------------------------------------------------------------------------------------------
# Batches


class Observation:
    """Turns (image, EditBox) into the model's view: the window, the box in it, and the
    conditioning / targets at the model's size."""

    def __init__(self, kind: str, crop_size: int):
        if kind not in OBSERVATIONS:
            raise ValueError(f"unknown TwoSM observation {kind!r} ({', '.join(OBSERVATIONS)})")
        self.kind, self.crop_size = kind, crop_size

    def window(self, box, width, height, offset=None):
        if self.kind == "full":
            return (0, 0, width, height)
        return local_window(box, width, height, offset)

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


def twosm_batch(split, spec, observation: Observation, indices, edits, flips, offsets,
                device) -> GanBatch:
    """GanBatch of the two-stream model: condition = one-hot Su + edges + box mask of the
    observation; target = cat(GT object mask, one-hot GT labels); mask = the box."""
    incompletes, edges, masks, targets, boxes = [], [], [], [], []
    for index, edit, flip, offset in zip(indices, edits, flips, offsets):
        labels, instances = split.labels[index], split.instances[index]
        if flip:
            labels, instances = labels[:, ::-1], instances[:, ::-1]
        incomplete, edited, mask, truth, obj, box = observation.view(labels, instances, edit,
                                                                     offset)
        one_hot = np.eye(spec.num_labels, dtype=np.float32)[truth].transpose(2, 0, 1)
        incompletes.append(incomplete)
        edges.append(instance_edges(edited))
        masks.append(mask)
        targets.append(np.concatenate([obj[None].astype(np.float32), one_hot]))
        boxes.append(box)
    incomplete = torch.from_numpy(np.stack(incompletes)).long().to(device)
    mask = torch.from_numpy(np.stack(masks)).to(device)
    condition = condition_tensor(incomplete, torch.from_numpy(np.stack(edges)).to(device), mask,
                                 spec.num_labels)
    return GanBatch(condition=condition, target=torch.from_numpy(np.stack(targets)).to(device),
                    mask=mask.unsqueeze(1), boxes=tuple(boxes))


#---------------------------------------------------------------------------------------------
# Network


class TwoStreamGenerator(nn.Module):
    """Shared encoder (c7s1-ngf, n_downsampling stride-2 convs, n_blocks residual blocks) and two
    decoders (n_downsampling transposed convs, c7s1): the object mask (1 channel, sigmoid) and
    the context labels (num_labels channels, softmax).

    x: (N, in_channels, S, S) -> (N, 1 + num_labels, S, S) probabilities."""

    def __init__(self, in_channels: int, num_labels: int, ngf: int = 64,
                 n_downsampling: int = 4, n_blocks: int = 9):
        super().__init__()
        self.multiple = 2 ** n_downsampling
        width = ngf * 2 ** n_downsampling
        self.encoder = nn.Sequential(*encoder_layers(in_channels, ngf, n_downsampling, n_blocks))
        self.mask_stream = nn.Sequential(*decoder_layers(width, n_downsampling, 1))
        self.context_stream = nn.Sequential(*decoder_layers(width, n_downsampling, num_labels))

    def forward(self, x):
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"TwoSM input {tuple(x.shape[-2:])} (H, W) is not a multiple of "
                             f"{self.multiple} (2**n_downsampling)")
        shared = self.encoder(x)
        return torch.cat([torch.sigmoid(self.mask_stream(shared)),
                          torch.softmax(self.context_stream(shared), 1)], 1)


#---------------------------------------------------------------------------------------------
# Loss plug-in

EPS = 1e-7


class TwoStreamLoss(nn.Module):
    """TwoSM's objective on the raw output: λ_mask · BCE(object mask) + λ_context ·
    NLL(context labels) + λ_gan · multiscale LSGAN on (condition, context probabilities); the D
    terms carry pix2pixHD's ½. Output / target layout: channel 0 the object mask, 1.. the
    labels."""

    def __init__(self, condition_channels: int, num_labels: int, *, ndf=64, n_layers=3,
                 num_d=2, lambda_gan=0.1, lambda_mask=1.0, lambda_context=1.0):
        super().__init__()
        self.discriminator = MultiscaleDiscriminator(condition_channels + num_labels, ndf,
                                                     n_layers, num_d)
        self.lambda_gan, self.lambda_mask, self.lambda_context = \
            lambda_gan, lambda_mask, lambda_context

    def _fake_and_real_scales(self, batch: GanBatch, context) -> tuple:
        """D's output for (condition, context) and (condition, the target's labels)."""
        return fake_and_real_scales(self.discriminator, batch.condition, context,
                                    batch.target[:, 1:])

    def _generator_terms(self, batch, generated, fake_scales) -> dict:
        mask, context = generated[:, :1], generated[:, 1:]
        bce = F.binary_cross_entropy(mask.clamp(EPS, 1 - EPS), batch.target[:, :1])
        nll = F.nll_loss(torch.log(context.clamp_min(EPS)), batch.target[:, 1:].argmax(1))
        adversarial = sum(lsgan(scale[-1], True) for scale in fake_scales)
        return {"G_mask": self.lambda_mask * bce, "G_context": self.lambda_context * nll,
                "G_adv": self.lambda_gan * adversarial}

    def generator_terms(self, batch: GanBatch, generated, fused) -> dict:
        with frozen(self.discriminator):
            scales = self.discriminator(torch.cat([batch.condition, generated[:, 1:]], 1))
        return self._generator_terms(batch, generated, scales)

    def discriminator_terms(self, batch: GanBatch, generated, fused) -> dict:
        return multiscale_discriminator_terms(
            *self._fake_and_real_scales(batch, generated[:, 1:].detach()))

    def joint_terms(self, batch: GanBatch, generated, fused) -> tuple:
        """(generator_terms, discriminator_terms) from one D pass over fake and real (the
        joint step of pipeline.trainer.train)."""
        fake_scales, real_scales = self._fake_and_real_scales(batch, generated[:, 1:])
        return (self._generator_terms(batch, generated, fake_scales),
                multiscale_discriminator_terms(fake_scales, real_scales))


#---------------------------------------------------------------------------------------------
# Training data and test-time prediction


class TwoStreamTask(EditTask):
    """TwoSM training data: EditTask's random eligible box per image per epoch, random flip and
    shuffled order, plus a random window offset per sample (the local observation's jitter),
    all drawn from (seed, epoch)."""

    def __init__(self, split, spec, train_boxes: dict, observation: Observation, *,
                 batch_size: int, flip: bool, seed: int):
        super().__init__(split, spec, train_boxes, batch_size=batch_size, flip=flip, seed=seed)
        self.observation = observation

    def plan_extra(self, indices, rng):
        """The window offset of each sample (the local observation's jitter)."""
        return [(float(rng.random()), float(rng.random())) for _ in indices]

    def build(self, plan) -> GanBatch:
        indices, edits, flips, offsets = plan
        return twosm_batch(self.split, self.spec, self.observation, indices, edits, flips,
                           offsets, "cpu")


@torch.no_grad()
def predict_labels(generator: TwoStreamGenerator, observation: Observation, labels, instances,
                   edit: EditBox, spec, device) -> np.ndarray:
    """The edited label map: the context stream's argmax inside the box, the map elsewhere."""
    height, width = labels.shape
    window = observation.window(edit.box, width, height)
    batch = twosm_batch(_One(labels, instances), spec, observation, [0], [edit], [False],
                        [None], device)
    context = generator(batch.condition)[:, 1:]
    wx1, wy1, wx2, wy2 = window
    if observation.kind == "local":
        context = F.interpolate(context, size=(wy2 - wy1, wx2 - wx1), mode="bilinear",
                                align_corners=False)
    predicted_window = context[0].argmax(0).cpu().numpy()
    predicted = labels.copy()
    x1, y1, x2, y2 = edit.box
    predicted[y1:y2, x1:x2] = predicted_window[y1 - wy1:y2 - wy1, x1 - wx1:x2 - wx1]
    return predicted


class _One:
    """A one-image split for twosm_batch."""

    def __init__(self, labels, instances):
        self.labels, self.instances = labels[None], instances[None]
