"""How a trained generator redraws one box of a user's label map at the map's own pixels (the
editor, pipeline.apps.editing; a row kind names its way: pipeline.kinds, `edit_box`):

- colour_box: a colour-map generator (structure rows) sees the map resized to its training
  size (nearest neighbour, pixel centres), its box scaled to cover the same region; its labels,
  read back by nearest palette colour, are resized back (nearest) into the box.
- twosm_box: a two-stream generator draws at the map's own resolution: a local-observation
  model crops its box-centred window from the map as it is; a whole-map model sees the map at
  its training size; either way its streams are resampled bilinearly onto the box's own pixels
  (no blocks of the model's pixel size).

Both read the model's size, palette and dataset from its file's metadata (`generator.meta`)."""
from __future__ import annotations

import numpy as np
import torch

from pipeline.data.datasets import colour_to_labels
from pipeline.data.sets import get_spec
from pipeline.data.inputs import (EditBox, condition_tensor, edit_inputs, from_unit_range,
                                  instance_edges)
from pipeline.models.twosm_prediction import (by_label_rule, painted_labels, upsampled_labels,
                                              window_logits)

#---------------------------------------------------------------------------------------------
# Geometry (pure functions)


def nearest_index(dst: int, src: int) -> np.ndarray:
    """For each of `dst` output pixels along one axis, the source pixel whose centre is nearest
    (the map from a size-`src` axis resized to `dst`): floor((i + 0.5) * src / dst)."""
    return np.minimum(((np.arange(dst) + 0.5) * src / dst).astype(np.int64), src - 1)


def resize_nearest(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, ...) -> (height, width, ...) by nearest neighbour (labels, ids, colours)."""
    if array.shape[:2] == (height, width):
        return array
    rows = nearest_index(height, array.shape[0])
    cols = nearest_index(width, array.shape[1])
    return array[rows[:, None], cols[None, :]]


def scale_box(box, size_from: tuple, size_to: tuple) -> tuple:
    """A half-open box of a (W, H) image mapped onto a (W', H') image so that it covers the same
    region (floor of x1, y1; ceiling of x2, y2), never empty."""
    (w0, h0), (w1, h1) = size_from, size_to
    x1, y1, x2, y2 = box
    nx1, ny1 = (x1 * w1) // w0, (y1 * h1) // h0
    nx2, ny2 = -((-x2 * w1) // w0), -((-y2 * h1) // h0)
    nx1, ny1 = min(nx1, w1 - 1), min(ny1, h1 - 1)
    return (nx1, ny1, max(min(nx2, w1), nx1 + 1), max(min(ny2, h1), ny1 + 1))


def _size(generator) -> tuple:
    return int(generator.meta["width"]), int(generator.meta["height"])


#---------------------------------------------------------------------------------------------
# One box, by the kind of generator


@torch.no_grad()
def colour_box(generator, labels, instances, box, target, device) -> np.ndarray:
    """A colour-map generator's labels inside `box` (the map's pixels) for label `target`."""
    model_width, model_height = _size(generator)
    palette = np.asarray(generator.meta["palette"], dtype=np.uint8)
    height, width = labels.shape
    small_labels = resize_nearest(labels, model_width, model_height)
    small_instances = resize_nearest(instances, model_width, model_height)
    small_box = scale_box(box, (width, height), (model_width, model_height))
    edit = EditBox("edit", target, small_box)
    incomplete, edited_instances, mask = edit_inputs(small_labels, small_instances, edit)
    condition = condition_tensor(
        torch.from_numpy(incomplete[None]).long().to(device),
        torch.from_numpy(instance_edges(edited_instances)[None]).to(device),
        torch.from_numpy(mask[None]).to(device), len(generator.meta["label_names"]))
    generated = from_unit_range(generator(condition))[0]
    small = colour_to_labels(generated, palette).astype(labels.dtype)  # Eq 5: only the box
    x1, y1, x2, y2 = box                                               # is used
    rows = nearest_index(height, model_height)[y1:y2]
    cols = nearest_index(width, model_width)[x1:x2]
    return small[rows[:, None], cols[None, :]]


@torch.no_grad()
def twosm_box(generator, labels, instances, box, target, device) -> np.ndarray:
    """A two-stream generator's labels inside `box` (the map's pixels) for label `target`."""
    model_width, model_height = _size(generator)
    spec, observation = get_spec(generator.meta["dataset"]), generator.observation
    height, width = labels.shape
    x1, y1, x2, y2 = box
    if observation.kind == "local" or (width, height) == (model_width, model_height):
        view_labels, view_instances, view_box = labels, instances, box
    else:
        view_labels = resize_nearest(labels, model_width, model_height)
        view_instances = resize_nearest(instances, model_width, model_height)
        view_box = scale_box(box, (width, height), (model_width, model_height))
    window, context, mask = window_logits(generator, observation, view_labels, view_instances,
                                          EditBox("edit", target, view_box), spec, device)
    wx1, wy1, wx2, wy2 = window
    if view_labels is labels:  # the window is in map pixels
        size, rows, cols = (wy2 - wy1, wx2 - wx1), (y1 - wy1, y2 - wy1), (x1 - wx1, x2 - wx1)
    else:  # the whole small map: resample it onto the map's grid, read the box
        size, rows, cols = (height, width), (y1, y2), (x1, x2)
    context_labels, mask_on = upsampled_labels(context, mask, size, rows, cols,
                                               dtype=labels.dtype)
    return by_label_rule(generator, painted_labels(context_labels, mask_on, target, spec),
                         context_labels)
