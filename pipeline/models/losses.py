"""Generator losses as plug-ins of the one trainer. Each plug-in owns its discriminators and
returns named generator terms (with its λ applied) and named discriminator terms.

- Pix2PixHDLoss: L_B = λ1 L_adv + λ2 L_feat + λ3 L_perc (paper Eq 1-4).
- MExLoss:       λ4 L_MEx, q+1 discriminators on crops of the expanded boxes (Eq 6-7).
- AMExLoss:      λ4 L_A-MEx, one discriminator on full-size expanded-mask-multiplied maps (Eq 9);
                 also the A-MEx of GL+A-MEx inpainting (pipeline.models.inpainting), on RGB photos.

A plug-in whose discriminators keep no batch statistics also has `joint_terms`: both sets of
terms from one discriminator pass over the fake and the real maps (the trainer's joint step).

All adversarial terms are least-squares GAN terms (pix2pixHD's default), i.e. the log terms of
Eq 2 / 7 / 9 replaced by (D - 1)^2 and D^2. Discriminator terms carry pix2pixHD's factor 1/2.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.data.boxes import expand_box
from pipeline.data.inputs import GanBatch
from pipeline.models.networks import (CanvasDiscriminators, MultiscaleDiscriminator, PatchDiscriminator,
                               VGG19Features, valid_mask)


def lsgan(score: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN term: mean (D - 1)^2 for real targets, mean D^2 for fake ones."""
    return F.mse_loss(score, torch.full_like(score, 1.0 if real else 0.0))


@contextlib.contextmanager
def frozen(module: nn.Module):
    """No parameter gradients for `module` inside (the G step must not fill D's .grad)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def fake_and_real_scales(discriminator: nn.Module, condition, fake, real) -> tuple:
    """A multiscale D's output (per scale, its list of feature maps) for (condition, fake) and
    for (condition, real), from one call on both stacked together."""
    scales = discriminator(torch.cat([torch.cat([condition, fake], 1),
                                      torch.cat([condition, real], 1)]))
    return tuple([[features.chunk(2)[part] for features in scale] for scale in scales]
                 for part in range(2))


def multiscale_discriminator_terms(fake_scales, real_scales) -> dict:
    """pix2pixHD's D terms over every scale: ½ LSGAN(fake → 0) and ½ LSGAN(real → 1)."""
    return {"D_fake": 0.5 * sum(lsgan(s[-1], False) for s in fake_scales),
            "D_real": 0.5 * sum(lsgan(s[-1], True) for s in real_scales)}


#---------------------------------------------------------------------------------------------
# Basic structure-generator loss L_B (Eq 1-4)


class Pix2PixHDLoss(nn.Module):
    """pix2pixHD's objective on (condition, image) pairs with a multiscale conditional D.

    on="raw" scores Ỹ (the paper's Eq 1); on="fused" scores Ŷ (what the authors' code does).
    vgg=None: no perceptual term and no VGG19 forward (λ3 = 0, or L_perc dropped for lack of
    weights: pipeline.kinds.parts.build_vgg).
    """

    def __init__(self, condition_channels: int, vgg: VGG19Features | None, *, ndf=64, n_layers=3,
                 num_d=2, lambda_adv=1.0, lambda_feat=1.0, lambda_perc=1.0,
                 vgg_layer_weights=(1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), on="raw"):
        super().__init__()
        self.discriminator = MultiscaleDiscriminator(condition_channels + 3, ndf, n_layers, num_d)
        self.vgg = vgg
        self.lambda_adv, self.lambda_feat, self.lambda_perc = lambda_adv, lambda_feat, lambda_perc
        self.vgg_layer_weights = tuple(vgg_layer_weights)
        self.on = on

    def _image(self, generated, fused):
        return generated if self.on == "raw" else fused

    def _fake_and_real_scales(self, batch: GanBatch, image) -> tuple:
        return fake_and_real_scales(self.discriminator, batch.condition, image, batch.target)

    def _generator_terms(self, batch, image, fake_scales, real_scales) -> dict:
        adversarial = sum(lsgan(scale[-1], True) for scale in fake_scales)
        # Eq 3: sum over the D layers of the mean absolute feature difference, averaged over scales.
        matching = sum(F.l1_loss(fake, real.detach())
                       for fake_scale, real_scale in zip(fake_scales, real_scales)
                       for fake, real in zip(fake_scale[:-1], real_scale[:-1])) / len(fake_scales)
        terms = {"G_adv": self.lambda_adv * adversarial, "G_feat": self.lambda_feat * matching}
        if self.vgg is not None:
            # Eq 4: sum_i w_i |E_i(Ỹ) - E_i(Yc)|_1 over VGG19 relu1_1..relu5_1.
            fake_features = self.vgg(image)
            with torch.no_grad():
                real_features = self.vgg(batch.target)
            perceptual = sum(w * F.l1_loss(f, r) for w, f, r in
                             zip(self.vgg_layer_weights, fake_features, real_features))
            terms["G_perc"] = self.lambda_perc * perceptual
        return terms

    def generator_terms(self, batch: GanBatch, generated, fused) -> dict:
        image = self._image(generated, fused)
        with frozen(self.discriminator):
            fake_scales, real_scales = self._fake_and_real_scales(batch, image)
        return self._generator_terms(batch, image, fake_scales, real_scales)

    def discriminator_terms(self, batch: GanBatch, generated, fused) -> dict:
        return multiscale_discriminator_terms(
            *self._fake_and_real_scales(batch, self._image(generated, fused).detach()))

    def joint_terms(self, batch: GanBatch, generated, fused) -> tuple:
        """(generator_terms, discriminator_terms) from one D pass over fake and real, as
        pix2pixHD's three D passes give (the joint step of pipeline.training.trainer.train)."""
        image = self._image(generated, fused)
        fake_scales, real_scales = self._fake_and_real_scales(batch, image)
        return (self._generator_terms(batch, image, fake_scales, real_scales),
                multiscale_discriminator_terms(fake_scales, real_scales))


#---------------------------------------------------------------------------------------------
# MEx loss (Eq 6-7)


def expanded_crops(batch: GanBatch, image: torch.Tensor, q: int, alpha: int, beta: int):
    """For j = 0..q, the crops of bE_j of (condition, image) for every sample: a list over j of
    lists over samples of (1, C + image channels, h_j, w_j) tensors. Crop(Su × M^E_j) of Eq 6-7."""
    height, width = image.shape[-2:]
    crops = []
    for j in range(q + 1):
        per_sample = []
        for index, box in enumerate(batch.boxes):
            x1, y1, x2, y2 = expand_box(box, j, alpha, beta, width, height)
            per_sample.append(torch.cat([batch.condition[index:index + 1, :, y1:y2, x1:x2],
                                         image[index:index + 1, :, y1:y2, x1:x2]], 1))
        crops.append(per_sample)
    return crops


def at_least_2x2(crop: torch.Tensor) -> torch.Tensor:
    """Replicate-pad a crop thinner than 2 px: the PatchGAN's instance norm needs more than one
    spatial element (a 1-px-wide box is eligible on small Helen maps, e.g. 1x20 at 256x256)."""
    pad_w, pad_h = max(0, 2 - crop.shape[-1]), max(0, 2 - crop.shape[-2])
    if pad_w or pad_h:
        crop = F.pad(crop, (0, pad_w, 0, pad_h), mode="replicate")
    return crop


class ExpansionLoss(nn.Module):
    """What MEx and A-MEx share: the expansion levels j = 0..top_level, the steps α / β, λ4,
    and the G / D terms built from the subclass's `_scores(batch, images, targets)` (the summed
    LSGAN terms over the levels). top_level is the paper's q under Eq 6-7, q - 1 under the
    authors' range(q) (pipeline.kinds.parts.highest_expansion resolves it from a row's q).

    `channels` selects the image the discriminators see from the generator output and the
    target: all of it for the colour-map rows (3 channels), the context stream of the two-stream
    model (channels 1.., one per label) for the TwoSM rows. The boxes are `batch.boxes` and the
    condition `batch.condition`: for GL+A-MEx inpainting (pipeline.models.inpainting) the holes and
    the 4-channel masked photo + hole mask, with the RGB photo as the image."""
    term = ""

    def __init__(self, *, top_level: int, alpha: int, beta: int, lambda_mex: float,
                 channels: slice = slice(None)):
        super().__init__()
        self.top_level, self.alpha, self.beta = top_level, alpha, beta
        self.lambda_mex = lambda_mex
        self.channels = channels

    @property
    def name(self) -> str:
        """How a training phase names this plug-in (pipeline.training.trainer.Phase): mex / amex."""
        return self.term

    def _scores(self, batch, images: list, targets: list) -> list:
        """For each image (N, channels, H, W) and each of its LSGAN targets targets[i] (True:
        real, False: fake), the summed LSGAN terms over j = 0..q averaged over the batch; the
        images go through each discriminator together."""
        raise NotImplementedError

    def _generator_term(self, score) -> dict:
        return {f"G_{self.term}": self.lambda_mex * score}

    def _discriminator_terms(self, fake_score, real_score) -> dict:
        return {f"D_{self.term}_fake": 0.5 * self.lambda_mex * fake_score,
                f"D_{self.term}_real": 0.5 * self.lambda_mex * real_score}

    def generator_terms(self, batch, generated, fused) -> dict:
        with frozen(self):  # the module's only parameters are its discriminators
            (score,), = self._scores(batch, [fused[:, self.channels]], [(True,)])
        return self._generator_term(score)

    def discriminator_terms(self, batch, generated, fused) -> dict:
        fake, real = fused[:, self.channels].detach(), batch.target[:, self.channels]
        (fake_score,), (real_score,) = self._scores(batch, [fake, real], [(False,), (True,)])
        return self._discriminator_terms(fake_score, real_score)

    def joint_terms(self, batch, generated, fused) -> tuple:
        """(generator_terms, discriminator_terms) from one pass of the discriminators over the
        fake and real maps (the joint step of pipeline.training.trainer.train)."""
        fake, real = fused[:, self.channels], batch.target[:, self.channels]
        (generator_score, fake_score), (real_score,) = self._scores(
            batch, [fake, real], [(True, False), (True,)])
        return (self._generator_term(generator_score),
                self._discriminator_terms(fake_score, real_score))


class MExLoss(ExpansionLoss):
    """λ4 · L_MEx: D_j (j = 0..q, a PatchGAN each, as in the authors' code) scores the crop of the
    j-level expanded box of Ŷ (fake) or Yc (real), conditioned on the same crop of the G input.
    Terms are summed over j (Eq 7) and averaged over the batch. Crops are not resized.

    crop_canvas = 0: each D_j scores its crops at their own size, one call per crop size.
    crop_canvas = N > 0: the q+1 D_j run as one grouped-convolution network on the crops
    zero-padded to a canvas whose sides are rounded up to multiples of N px, with every layer's
    instance norm and the score mean taken over the crop's own positions only
    (`CanvasDiscriminators`): the same loss up to float rounding, from one call over a few
    canvas shapes instead of q+1 calls over as many shapes as boxes (GPU kernels are launched,
    and cuDNN plans are built, per call and per new shape)."""

    term = "mex"

    def __init__(self, condition_channels: int, *, top_level: int, alpha: int, beta: int,
                 ndf=64,
                 n_layers=3, lambda_mex=1.0, image_channels=3, channels=slice(None),
                 crop_canvas: int = 0):
        super().__init__(top_level=top_level, alpha=alpha, beta=beta, lambda_mex=lambda_mex,
                         channels=channels)
        if crop_canvas < 0:
            raise ValueError(f"crop_canvas {crop_canvas}: 0 (one call per crop size) or a "
                             "multiple in px > 0")
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(condition_channels + image_channels, ndf, n_layers)
            for _ in range(top_level + 1))
        self.crop_canvas = crop_canvas
        self.canvas_network = CanvasDiscriminators() if crop_canvas else None

    def _scores(self, batch, images: list, targets: list) -> list:
        if self.crop_canvas:
            return self._canvas_scores(batch, images, targets)
        return self._per_size_scores(batch, images, targets)

    def _per_size_scores(self, batch, images: list, targets: list) -> list:
        """Eq 7: sum over j of the mean over samples of the LSGAN term of D_j on the crop of
        bE_j. The crops that D_j scores in one step (every image, every sample) go through it
        in one call per crop size (instance norm is per sample, so a batch of crops scores each
        crop as it would alone)."""
        totals = [[0.0] * len(image_targets) for image_targets in targets]
        crops = [expanded_crops(batch, image, self.top_level, self.alpha, self.beta)
                 for image in images]
        samples = len(batch.boxes)
        for j, D in enumerate(self.discriminators):
            by_size = {}
            for index, per_image in enumerate(crops):
                for crop in per_image[j]:
                    crop = at_least_2x2(crop)
                    by_size.setdefault(tuple(crop.shape[-2:]), []).append((index, crop))
            for members in by_size.values():
                scores = D(torch.cat([crop for _, crop in members]))[-1]
                for position, (index, _) in enumerate(members):
                    score = scores[position:position + 1]
                    for k, real in enumerate(targets[index]):
                        totals[index][k] = totals[index][k] + lsgan(score, real) / samples
        return totals

    def _canvas_scores(self, batch, images: list, targets: list) -> list:
        """Eq 7 as _per_size_scores computes it, through CanvasDiscriminators."""
        canvas, heights, widths = crop_canvas(batch, images, self.top_level, self.alpha,
                                              self.beta, self.crop_canvas)
        scores, valid = self.canvas_network(self.discriminators, canvas, heights, widths)
        scores = scores.unflatten(0, (len(images), len(batch.boxes)))      # (I, N, q+1, 1, h, w)
        count = valid.sum((-3, -2, -1))                                          # (N, q+1)
        return [[((((score - float(real)) ** 2) * valid).sum((-3, -2, -1)) / count)
                 .sum(1).mean() for real in image_targets]
                for score, image_targets in zip(scores, targets)]


def crop_canvas(batch: GanBatch, images: list, q: int, alpha: int, beta: int,
                multiple: int) -> tuple:
    """The crops of bE_j (j = 0..q) of (condition, image), each at the top left of a zero
    canvas whose sides are the largest crop's rounded up to a multiple of `multiple` px.

    Returns (canvas, heights, widths): canvas (images x N, (q+1) x channels, Hc, Wc), the crop of
    bE_j of sample n of image i in channels j·C..(j+1)·C of row i·N + n; heights / widths
    (N, q+1) long, each crop's size. A crop thinner than 2 px is replicate-padded to 2 (at_least_2x2):
    its last row / column is gathered again."""
    height, width = images[0].shape[-2:]
    # The boxes are host data: the canvas size is known without a device sync.
    expanded = torch.tensor([[expand_box(box, j, alpha, beta, width, height)
                              for j in range(q + 1)] for box in batch.boxes])  # (N, q+1, 4)
    rows_in_box, columns_in_box = expanded[..., 3] - expanded[..., 1], \
        expanded[..., 2] - expanded[..., 0]
    canvas_height = -(-max(2, int(rows_in_box.max())) // multiple) * multiple
    canvas_width = -(-max(2, int(columns_in_box.max())) // multiple) * multiple
    device = images[0].device
    x1, y1, rows_in_box, columns_in_box = (t.to(device, non_blocking=True) for t in (
        expanded[..., 0], expanded[..., 1], rows_in_box, columns_in_box))
    heights, widths = rows_in_box.clamp(min=2), columns_in_box.clamp(min=2)
    # Canvas position t reads the box's row y1 + min(t, h - 1): replicate padding of thin crops,
    # and in-bounds indices past the crop, whose values the valid mask zeroes.
    rows = y1[..., None] + torch.minimum(torch.arange(canvas_height, device=device),
                                         rows_in_box[..., None] - 1)          # (N, q+1, Hc)
    columns = x1[..., None] + torch.minimum(torch.arange(canvas_width, device=device),
                                            columns_in_box[..., None] - 1)     # (N, q+1, Wc)
    samples = torch.arange(len(batch.boxes), device=device)[:, None, None, None]
    pairs = torch.stack([torch.cat([batch.condition, image], 1) for image in images])
    gathered = pairs[:, samples, :, rows[..., None], columns[..., None, :]]  # (N,q+1,Hc,Wc,I,C)
    gathered = gathered.permute(4, 0, 1, 5, 2, 3)                          # (I, N, q+1, C, Hc, Wc)
    inside = valid_mask(heights, widths, canvas_height, canvas_width)      # (N, q+1, 1, Hc, Wc)
    return (gathered * inside).flatten(2, 3).flatten(0, 1), heights, widths


#---------------------------------------------------------------------------------------------
# A-MEx loss (Eq 9)


def expanded_masks(boxes, q: int, alpha: int, beta: int, height: int, width: int,
                   device=None) -> torch.Tensor:
    """M^E_j for j = 0..q and every sample: (q+1, N, 1, H, W) float, 1 inside bE_j."""
    masks = torch.zeros(q + 1, len(boxes), 1, height, width, device=device)
    for j in range(q + 1):
        for index, box in enumerate(boxes):
            x1, y1, x2, y2 = expand_box(box, j, alpha, beta, width, height)
            masks[j, index, :, y1:y2, x1:x2] = 1.0
    return masks


class AMExLoss(ExpansionLoss):
    """λ4 · L_A-MEx: one PatchGAN D_E scores the full-size (condition, image) pair multiplied by
    each expanded mask M^E_j, j = 0..q (no Crop); summed over j, averaged over the batch.
    The q+1 masked copies go through D_E as one batch."""

    term = "amex"

    def __init__(self, condition_channels: int, *, top_level: int, alpha: int, beta: int,
                 ndf=64,
                 n_layers=3, lambda_mex=1.0, image_channels=3, channels=slice(None)):
        super().__init__(top_level=top_level, alpha=alpha, beta=beta, lambda_mex=lambda_mex,
                         channels=channels)
        self.discriminator = PatchDiscriminator(condition_channels + image_channels, ndf,
                                                n_layers)

    def _scores(self, batch, images: list, targets: list) -> list:
        """Eq 9: sum over j of the mean over samples of the LSGAN term of D_E on the (condition,
        image) pair multiplied by M^E_j; every image's q+1 masked pairs in one call."""
        height, width = images[0].shape[-2:]
        masks = expanded_masks(batch.boxes, self.top_level, self.alpha, self.beta, height,
                               width, device=images[0].device)              # (q+1, N, 1, H, W)
        pairs = torch.stack([torch.cat([batch.condition, image], 1) for image in images])
        masked = (pairs.unsqueeze(1) * masks).flatten(0, 2)            # (I(q+1)N, C+3, H, W)
        score = self.discriminator(masked)[-1]
        levels = self.top_level + 1
        per_map = score.flatten(1).unflatten(0, (len(images), levels, -1))  # (I, q+1, N, P)
        # Every map has the same P patches: the sum over j of the means is (q+1) x the mean.
        return [[levels * lsgan(per_map[index], real) for real in image_targets]
                for index, image_targets in enumerate(targets)]
