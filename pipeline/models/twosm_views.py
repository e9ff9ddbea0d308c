"""TwoSM's views of a map (pipeline.models.twosm): the observation window around a box and its
geometry, the training batches of a window, and the training task that draws them (Hong et
al.'s enlarged loss region and background boxes)."""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import torch

from pipeline.data.boxes import object_mask
from pipeline.data.inputs import (EditBox, EditTask, GanBatch, condition_tensor, edit_inputs,
                                 instance_edges)

OBSERVATIONS = ("local", "full")
# Hong et al.'s loss region: the box enlarged by a ratio drawn uniformly from this range per
# training sample (their min_ctx_ratio / max_ctx_ratio, get_soft_bbox).
CONTEXT_RATIOS = (1.2, 1.5)
# Hong et al.'s background boxes: each side drawn from [128, 256) px of Cityscapes' 2048 px
# wide maps (min_box_size / max_box_size): these fractions of the map width.
BACKGROUND_BOX_SIDES = (1 / 16, 1 / 8)

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
# Training data


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
