"""TwoSM's test-time prediction (pipeline.models.twosm): the labels in the box from the two
streams of a window, resized back (bilinear probabilities) and pasted into the map."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from pipeline.data.inputs import EditBox
from pipeline.models.twosm import SIMPLIFIED, TwoStreamGenerator
from pipeline.models.twosm_views import Observation, twosm_batch


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
