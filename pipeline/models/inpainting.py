"""GL image inpainting (Iizuka, Simo-Serra and Ishikawa 2017, "Globally and Locally Consistent
Image Completion"), the paper's Table 3 rows GL and GL+A-MEx on CMP Facade, written from the GL
paper's description (no code copied):

- Input: the photo with the hole filled with the training set's mean colour, plus the hole mask
  (4 channels). Output: an RGB image (tanh, [-1, 1]); only the hole is kept (Eq 5-style fusion,
  `GanBatch.fuse`): Ŷ = C(x, M)·M + x·(1 − M).
- Completion network C: conv5 → n_downsampling × (stride-2 conv3, conv3) → conv3 → dilated conv3
  (dilations 2, 4, 8, 16) → conv3 ×2 → n_downsampling × (stride-2 deconv4, conv3) → conv3 → RGB.
  Batch norm + ReLU. Any H×W: the input is padded (edge replication) up to a multiple of the
  stride 2**n_downsampling and the output cropped back, so the scored region is never resized.
- Context discriminator D: a global trunk (stride-2 conv5 layers, FC 16·ndf) on the whole
  completed image and a local trunk on a fixed-size patch around the hole (GL: 128 of 256),
  concatenated, FC → one logit. GL's objective (their Eq 2):
      min_C max_D  L_rec(x, M) + α·[log D(x, P(x)) + log(1 − D(Ŷ, P(Ŷ)))]
  with L_rec = ||M ⊙ (C(x, M) − x)||² averaged over the hole (MSE; L1 as an option), or (row
  key `rec_divisor: image`, the authors' code and the GLCIC port) the same hole sum divided by
  the whole image's pixels, which weakens L_rec against α·adv by the image / hole area ratio.
- Training phases (GL §3.4): T_C steps completion network alone (L_rec), T_D steps the
  discriminators alone (C fixed), then joint; a trainer feature (`pipeline.training.trainer.Phase`)
  that the inpainting kind schedules (`pipeline.kinds.inpainting.gl_phases`).
- GL+A-MEx, two readings of "combine GL and A-MEx" (row key `amex_reading`):
  ours (default): GL as above plus α·λ4·L_A-MEx (paper Eq 9) through `pipeline.models.losses.AMExLoss`,
  a separate LSGAN PatchGAN on the 4-channel input and the RGB image multiplied by the expanded
  hole masks M^E_j, j = 0..q (paper: q = α = β = 4), beside GL's local discriminator.
  authors (their facade code, `_netlocalD` of net_gl_mex.py): no local patch and no separate
  A-MEx discriminator; GL's local trunk becomes ONE trunk, shared over j = 0..q, on the full-size
  cat(Ŷ·M^E_j, M^E_j); FC(cat(global features, the q+1 local features)) -> one logit, GL's BCE
  weighted α (`ExpandedContextDiscriminator`, `ExpandedContextLoss`; λ4 does not enter).
  The authors' facade code offsets the expansions by the batch index instead of j (a bug) and
  loops j = 0..q−1; Eq 9's j = 0..q is used in both readings.

Holes are half-open boxes (x1, y1, x2, y2). Images enter the networks in [-1, 1].
"""
from __future__ import annotations

import csv
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pipeline.data.inputs import GanBatch
from pipeline.models.losses import expanded_masks, frozen

RECONSTRUCTIONS = ("mse", "l1")
REC_DIVISORS = ("hole", "image")   # ReconstructionLoss: what L_rec's hole sum is divided by
ADVERSARIAL_PLUGINS = ("global_local", "amex", "global_amex")

#---------------------------------------------------------------------------------------------
# Geometry (pure functions)


def hole_side_range(side: int, low: float, high: float) -> tuple:
    """Smallest and largest hole side (pixels) for an image side: round(low·side) ..
    round(high·side), at least 1 (the rule of the fixed test holes,
    sets.facade.facade_test_masks)."""
    return max(1, round(low * side)), max(1, round(high * side))


def draw_hole(rng: np.random.Generator, width: int, height: int, hole) -> tuple:
    """A training hole: each side uniform in hole_side_range, placed uniformly in the image."""
    low_w, high_w = hole_side_range(width, *hole)
    low_h, high_h = hole_side_range(height, *hole)
    w, h = int(rng.integers(low_w, high_w + 1)), int(rng.integers(low_h, high_h + 1))
    x1, y1 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    return (x1, y1, x1 + w, y1 + h)


def local_patch_size(width: int, height: int, fraction: float) -> tuple:
    """(w, h) of the local discriminator's patch: round(fraction × side), at least 1."""
    return max(1, round(fraction * width)), max(1, round(fraction * height))


def local_patch(hole, patch_w: int, patch_h: int, width: int, height: int) -> tuple:
    """The local discriminator's window: patch_w × patch_h, centred on the hole, shifted to lie
    inside the image. It contains the hole whenever the hole fits in it."""
    x1, y1, x2, y2 = hole
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValueError(f"hole {tuple(hole)} is empty or outside a {width}x{height} image")
    if patch_w > width or patch_h > height:
        raise ValueError(f"local patch {patch_w}x{patch_h} is larger than the {width}x{height} "
                         "image")
    left = min(max((x1 + x2 - patch_w) // 2, 0), width - patch_w)
    top = min(max((y1 + y2 - patch_h) // 2, 0), height - patch_h)
    return (left, top, left + patch_w, top + patch_h)


def stride_padding(size: int, multiple: int) -> tuple:
    """(before, after) padding that brings `size` to the next multiple of `multiple`, split as
    evenly as possible (the extra pixel after)."""
    extra = (-size) % multiple
    return extra // 2, extra - extra // 2


def hole_mask(holes, height: int, width: int) -> np.ndarray:
    """(N, H, W) float32, 1 inside each sample's hole."""
    mask = np.zeros((len(holes), height, width), dtype=np.float32)
    for index, (x1, y1, x2, y2) in enumerate(holes):
        mask[index, y1:y2, x1:x2] = 1.0
    return mask


def mean_colour(photos: np.ndarray) -> tuple:
    """The training set's mean colour (R, G, B) on the 0-255 scale: GL's hole pre-fill."""
    return tuple(float(v) for v in np.asarray(photos, dtype=np.float64).mean(axis=(0, 1, 2)))


def read_test_holes(path: str, names, width: int, height: int, repeats: int) -> list:
    """[(image, repeat, hole)] from test_masks.csv, in file order: `repeats` holes for every image
    of `names` (the seed-679 holes every row and floor is scored on). A hole outside the image,
    an unknown image or a wrong count is an error naming the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"hole list {path} does not exist (run the prepare stage)")
    items, known = [], set(names)
    with open(path, newline="") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            try:
                hole = tuple(int(row[k]) for k in ("x1", "y1", "x2", "y2"))
                image, repeat = row["image"], int(row["repeat"])
            except (KeyError, ValueError, TypeError):
                raise ValueError(f"{path}:{line}: malformed hole row {row}") from None
            if image not in known:
                raise ValueError(f"{path}:{line}: image {image} is not in the test split")
            x1, y1, x2, y2 = hole
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                raise ValueError(f"{path}:{line}: hole {hole} is empty or outside the "
                                 f"{width}x{height} image")
            items.append((image, repeat, hole))
    counts = {name: 0 for name in names}
    for image, _, _ in items:
        counts[image] += 1
    wrong = [name for name, count in counts.items() if count != repeats]
    if wrong:
        raise ValueError(f"{path}: image {wrong[0]} has {counts[wrong[0]]} holes, expected "
                         f"{repeats} (inpainting.test_holes; rerun the prepare stage)")
    return items


#---------------------------------------------------------------------------------------------
# Batches


def inpainting_batch(photos: np.ndarray, holes, fill, device) -> GanBatch:
    """GanBatch of GL: condition = cat(photo with the hole set to `fill`, hole mask) (N, 4, H, W),
    target = the photo, mask = the hole, boxes = the holes. photos: (N, H, W, 3) uint8."""
    photos = np.ascontiguousarray(photos)
    target = torch.from_numpy(photos).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    mask = torch.from_numpy(hole_mask(holes, *photos.shape[1:3])).unsqueeze(1)
    fill = torch.tensor(fill, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1.0
    masked = target * (1 - mask) + fill * mask
    return GanBatch(condition=torch.cat([masked, mask], 1).to(device), target=target.to(device),
                    mask=mask.to(device), boxes=tuple(tuple(int(v) for v in h) for h in holes))


class InpaintingTask:
    """GL training data: every training photo once per epoch in a shuffled order, each with a
    random horizontal flip and a random hole (draw_hole), all drawn from (seed, epoch)."""

    def __init__(self, photos: np.ndarray, *, fill, hole, batch_size: int, flip: bool,
                 seed: int):
        if len(photos) == 0:
            raise ValueError("no training photos")
        self.photos, self.fill, self.hole = photos, fill, hole
        self.batch_size, self.flip, self.seed = batch_size, flip, seed

    def __len__(self):
        return -(-len(self.photos) // self.batch_size)

    def plan(self, epoch: int) -> list:
        """The epoch's (photo indices, flip flags, holes) per batch, drawn from (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.photos))
        height, width = self.photos.shape[1:3]
        plans = []
        for start in range(0, len(order), self.batch_size):
            indices, flips, holes = order[start:start + self.batch_size], [], []
            for _index in indices:
                flips.append(bool(self.flip and rng.random() < 0.5))
                holes.append(draw_hole(rng, width, height, self.hole))
            plans.append((indices, flips, holes))
        return plans

    def build(self, plan) -> GanBatch:
        indices, flips, holes = plan
        images = [self.photos[index][:, ::-1] if flip else self.photos[index]
                  for index, flip in zip(indices, flips)]
        return inpainting_batch(np.stack(images), holes, self.fill, "cpu")

    def epoch(self, epoch: int, device):
        for plan in self.plan(epoch):
            yield self.build(plan).to(device)


#---------------------------------------------------------------------------------------------
# Networks


def _conv(in_channels, out_channels, kernel, stride=1, dilation=1):
    padding = dilation * (kernel - 1) // 2
    return [nn.Conv2d(in_channels, out_channels, kernel, stride, padding, dilation),
            nn.BatchNorm2d(out_channels), nn.ReLU(True)]


class CompletionNetwork(nn.Module):
    """GL's completion network C (see the module docstring), widths ngf·2^k.

    x: (N, 4, H, W) masked photo + hole mask -> (N, 3, H, W) in [-1, 1], any H, W."""

    def __init__(self, ngf: int = 64, n_downsampling: int = 2, dilations=(2, 4, 8, 16),
                 in_channels: int = 4):
        super().__init__()
        self.multiple = 2 ** n_downsampling
        layers = _conv(in_channels, ngf, 5)
        width = ngf
        for _ in range(n_downsampling):
            layers += _conv(width, width * 2, 3, stride=2) + _conv(width * 2, width * 2, 3)
            width *= 2
        layers += _conv(width, width, 3)
        for dilation in dilations:
            layers += _conv(width, width, 3, dilation=dilation)
        layers += _conv(width, width, 3) + _conv(width, width, 3)
        for _ in range(n_downsampling):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            layers += _conv(width // 2, width // 2, 3)
            width //= 2
        layers += _conv(width, max(width // 2, 1), 3)
        layers += [nn.Conv2d(max(width // 2, 1), 3, 3, padding=1), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        height, width = x.shape[-2:]
        top, bottom = stride_padding(height, self.multiple)
        left, right = stride_padding(width, self.multiple)
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom), mode="replicate")
        return self.model(x)[..., top:top + height, left:left + width]


def trunk_output_side(side: int, layers: int) -> int:
    """Spatial side after `layers` stride-2 conv5 (padding 2) layers: ceil(side / 2) each."""
    for _ in range(layers):
        side = (side - 1) // 2 + 1
    return side


class _Trunk(nn.Module):
    """`layers` × (conv5 stride 2, BN, ReLU), widths ndf·2^k capped at 8·ndf, then FC → 16·ndf."""

    def __init__(self, in_channels: int, ndf: int, layers: int, height: int, width: int):
        super().__init__()
        blocks, channels = [], in_channels
        for k in range(layers):
            out = min(ndf * 2 ** k, ndf * 8)
            blocks += [nn.Conv2d(channels, out, 5, stride=2, padding=2), nn.BatchNorm2d(out),
                       nn.ReLU(True)]
            channels = out
        self.convs = nn.Sequential(*blocks)
        features = channels * trunk_output_side(height, layers) * trunk_output_side(width, layers)
        self.fc = nn.Linear(features, 16 * ndf)

    def forward(self, x):
        return F.relu(self.fc(self.convs(x).flatten(1)))


class ContextDiscriminator(nn.Module):
    """GL's global + local context discriminator: one logit per image from
    FC(cat(global trunk(image), local trunk(patch around the hole)))."""

    def __init__(self, height: int, width: int, patch: tuple, *, ndf: int = 64,
                 global_layers: int = 6, local_layers: int = 5):
        super().__init__()
        patch_w, patch_h = patch
        self.global_trunk = _Trunk(3, ndf, global_layers, height, width)
        self.local_trunk = _Trunk(3, ndf, local_layers, patch_h, patch_w)
        self.head = nn.Linear(32 * ndf, 1)

    def forward(self, image, patch):
        return self.head(torch.cat([self.global_trunk(image), self.local_trunk(patch)], 1))


class ExpandedContextDiscriminator(nn.Module):
    """The authors' reading of GL+A-MEx (their facade `_netlocalD`): GL's global trunk on the
    whole completed image, and in place of GL's local patch ONE local trunk, shared by every
    expansion j = 0..q, on the full-size cat(image · M^E_j, M^E_j) (4 channels: the image zeroed
    outside the j-level expanded hole, and that mask). FC(cat(global, local_0 .. local_q)) -> one
    logit per image. The trunk runs once per j (its batch norm sees one expansion's batch at a
    time, as their per-expansion loop). M^E_j: `pipeline.models.losses.expanded_masks` of the holes
    (j·alpha, j·beta px, clamped to the image).

    image: (N, 3, H, W); holes: N half-open (x1, y1, x2, y2) -> (N, 1) logits."""

    def __init__(self, height: int, width: int, *, q: int, alpha: int, beta: int, ndf: int = 64,
                 global_layers: int = 6, local_layers: int = 5):
        super().__init__()
        self.q, self.alpha, self.beta = q, alpha, beta
        self.global_trunk = _Trunk(3, ndf, global_layers, height, width)
        self.local_trunk = _Trunk(3 + 1, ndf, local_layers, height, width)  # shared over j
        self.head = nn.Linear(16 * ndf * (1 + q + 1), 1)

    def masks(self, holes, image) -> torch.Tensor:
        """M^E_j, j = 0..q: (q+1, N, 1, H, W) on the image's device."""
        return expanded_masks(holes, self.q, self.alpha, self.beta, *image.shape[-2:],
                              device=image.device).to(image.dtype)

    def forward(self, image, holes):
        features = [self.global_trunk(image)]
        for mask in self.masks(holes, image):
            features.append(self.local_trunk(torch.cat([image * mask, mask], 1)))
        return self.head(torch.cat(features, 1))


#---------------------------------------------------------------------------------------------
# Loss plug-ins (pipeline.training.trainer)


class ReconstructionLoss(nn.Module):
    """GL's L_rec: the squared (mse) or absolute (l1) error of C's raw output summed over the
    hole, divided by (`divisor`) the hole's pixels x channels (`hole`: the mean over the hole;
    ours) or by every pixel and channel of the batch (`image`: the authors' facade code and
    otenim/GLCIC-PyTorch, MSE of output·M against input·M over the whole tensor; with holes of
    0.375-0.5 of each side it is 4-7x weaker against α·adv than `hole`). No discriminator."""

    name = "reconstruction"

    def __init__(self, kind: str = "mse", weight: float = 1.0, divisor: str = "hole"):
        super().__init__()
        if kind not in RECONSTRUCTIONS:
            raise ValueError(f"unknown reconstruction {kind!r} ({', '.join(RECONSTRUCTIONS)})")
        if divisor not in REC_DIVISORS:
            raise ValueError(f"unknown L_rec divisor {divisor!r} ({', '.join(REC_DIVISORS)})")
        self.kind, self.weight, self.divisor = kind, weight, divisor

    def generator_terms(self, batch: GanBatch, generated, fused) -> dict:
        difference = (generated - batch.target) * batch.mask
        error = difference ** 2 if self.kind == "mse" else difference.abs()
        if self.divisor == "image":
            pixels = torch.tensor(float(generated.numel()), device=generated.device)
        else:
            pixels = batch.mask.sum() * generated.shape[1]
        return {"G_rec": self.weight * error.sum() / pixels.clamp_min(1.0)}

    def discriminator_terms(self, batch, generated, fused) -> dict:
        return {}


def local_patches(images: torch.Tensor, holes, patch: tuple) -> torch.Tensor:
    """The local discriminator's input: each image's local_patch around its hole, stacked."""
    height, width = images.shape[-2:]
    crops = []
    for index, hole in enumerate(holes):
        x1, y1, x2, y2 = local_patch(hole, *patch, width, height)
        crops.append(images[index:index + 1, :, y1:y2, x1:x2])
    return torch.cat(crops)


class _ContextAdversarialLoss(nn.Module):
    """GL's adversarial term around a discriminator that gives one logit per image, on the fused
    image Ŷ (the completed photo): generator term α·BCE(D(Ŷ), real); discriminator terms
    BCE(D(Ŷ), fake) and BCE(D(x), real), unweighted (as GL's D update: α only balances the
    generator's loss). The log-loss of GL's Eq 2, computed from logits. Subclasses say what
    the discriminator sees (`_logits`)."""

    def __init__(self, discriminator: nn.Module, alpha: float):
        super().__init__()
        self.discriminator, self.alpha = discriminator, alpha

    def _logits(self, batch, image):
        raise NotImplementedError

    @staticmethod
    def _bce(logits, real: bool):
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))

    def generator_terms(self, batch: GanBatch, generated, fused) -> dict:
        with frozen(self.discriminator):
            return {"G_adv": self.alpha * self._bce(self._logits(batch, fused), True)}

    def discriminator_terms(self, batch: GanBatch, generated, fused) -> dict:
        return {"D_fake": self._bce(self._logits(batch, fused.detach()), False),
                "D_real": self._bce(self._logits(batch, batch.target), True)}


class GlobalLocalLoss(_ContextAdversarialLoss):
    """GL's adversarial term with GL's context discriminator (global trunk + local trunk on the
    fixed-size patch around the hole); GL and the `ours` reading of GL+A-MEx."""

    name = "global_local"

    def __init__(self, height: int, width: int, patch: tuple, *, ndf: int = 64,
                 global_layers: int = 6, local_layers: int = 5, alpha: float = 0.0004):
        super().__init__(ContextDiscriminator(height, width, patch, ndf=ndf,
                                              global_layers=global_layers,
                                              local_layers=local_layers), alpha)
        self.patch = tuple(patch)

    def _logits(self, batch, image):
        return self.discriminator(image, local_patches(image, batch.boxes, self.patch))


class ExpandedContextLoss(_ContextAdversarialLoss):
    """The `authors` reading of GL+A-MEx: GL's adversarial term (same BCE terms, same α) with
    `ExpandedContextDiscriminator` in place of GL's context discriminator -- the expansions
    j = 0..q enter the one logit through the shared local trunk; there is no local patch and
    no separate A-MEx term (λ4 does not apply)."""

    name = "global_amex"

    def __init__(self, height: int, width: int, *, q: int, expand_x: int, expand_y: int,
                 ndf: int = 64, global_layers: int = 6, local_layers: int = 5,
                 alpha: float = 0.0004):
        super().__init__(ExpandedContextDiscriminator(height, width, q=q, alpha=expand_x,
                                                      beta=expand_y, ndf=ndf,
                                                      global_layers=global_layers,
                                                      local_layers=local_layers), alpha)

    def _logits(self, batch, image):
        return self.discriminator(image, batch.boxes)


#---------------------------------------------------------------------------------------------
# Test-time completion


@torch.no_grad()
def complete(generator: CompletionNetwork, photos: np.ndarray, holes, fill,
             batch_size: int = 16) -> np.ndarray:
    """Complete every (photo, hole) pair: (N, H, W, 3) uint8 fused outputs (outside the hole
    the input photo, bit for bit)."""
    device = next(generator.parameters()).device
    out = []
    for start in range(0, len(photos), batch_size):
        batch = inpainting_batch(photos[start:start + batch_size],
                                 holes[start:start + batch_size], fill, device)
        fused = batch.fuse(generator(batch.condition))
        out.append(((fused.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1)
                   .cpu().numpy())
    completed = np.concatenate(out)
    keep = hole_mask(holes, *photos.shape[1:3])[..., None] == 0
    return np.where(keep, photos, completed)  # exact outside the hole (no float round trip)

