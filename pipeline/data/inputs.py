"""Turning prepared maps and boxes into generator inputs (the conditioning on (Su, B)) and
into training / test batches, deterministically from (seed, epoch)."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.data.datasets import DatasetSpec, SplitArrays
from pipeline.atomic import atomic_open

BOX_COLUMNS = ["split", "image", "label", "x1", "y1", "x2", "y2", "area_fraction"]
TEST_BOX_COLUMNS = ["image", "label", "x1", "y1", "x2", "y2", "area_fraction"]


@dataclass(frozen=True)
class EditBox:
    """A box to redraw and the target label l_t."""
    image: str
    label: int
    box: tuple   # (x1, y1, x2, y2), half-open


#---------------------------------------------------------------------------------------------
# Box files


def write_csv(path: str, columns, rows) -> None:
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def read_boxes(path: str, split: str | None = None) -> dict:
    """image name -> list of EditBox, from boxes.csv (all eligible boxes) or test_boxes.csv."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"box list {path} does not exist (run the prepare stage)")
    boxes = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for line, row in enumerate(reader, start=2):
            try:
                if split is not None and row["split"] != split:
                    continue
                entry = EditBox(row["image"], int(row["label"]),
                                tuple(int(row[k]) for k in ("x1", "y1", "x2", "y2")))
            except (KeyError, ValueError, TypeError):
                raise ValueError(f"{path}:{line}: malformed box row {row}") from None
            boxes.setdefault(entry.image, []).append(entry)
    return boxes


#---------------------------------------------------------------------------------------------
# Conditioning


def instance_edges(instances: np.ndarray) -> np.ndarray:
    """pix2pixHD's boundary map: 1 where a pixel's instance id differs from a 4-neighbour's."""
    edges = np.zeros(instances.shape, dtype=np.float32)
    horizontal = instances[..., :, 1:] != instances[..., :, :-1]
    vertical = instances[..., 1:, :] != instances[..., :-1, :]
    edges[..., :, 1:][horizontal] = 1
    edges[..., :, :-1][horizontal] = 1
    edges[..., 1:, :][vertical] = 1
    edges[..., :-1, :][vertical] = 1
    return edges


def edit_inputs(labels: np.ndarray, instances: np.ndarray, edit: EditBox):
    """Su, the edited instance map and M for one image: the box painted as l_t (a single new
    instance l_t*1000+999, so its border shows in the edge channel, as for a user edit)."""
    x1, y1, x2, y2 = edit.box
    incomplete = labels.copy()
    incomplete[y1:y2, x1:x2] = edit.label
    edited_instances = instances.copy()
    edited_instances[y1:y2, x1:x2] = edit.label * 1000 + 999
    mask = np.zeros(labels.shape, dtype=np.float32)
    mask[y1:y2, x1:x2] = 1
    return incomplete, edited_instances, mask


def condition_tensor(incomplete: torch.Tensor, edges: torch.Tensor, mask: torch.Tensor,
                     num_labels: int) -> torch.Tensor:
    """G input: cat(one-hot(Su) [num_labels], instance edges [1], box mask [1]) -> (N, L+2, H, W).
    Built on the labels' device (the one-hot of NYU's 895 labels is large)."""
    one_hot = torch.zeros(incomplete.shape[0], num_labels, *incomplete.shape[-2:],
                          device=incomplete.device)
    one_hot.scatter_(1, incomplete.unsqueeze(1), 1.0)
    return torch.cat([one_hot, edges.unsqueeze(1), mask.unsqueeze(1)], 1)


def condition_channels(spec: DatasetSpec) -> int:
    return spec.num_labels + 2


def to_unit_range(images_uint8: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(images_uint8).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def from_unit_range(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    return ((images.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1) \
        .cpu().numpy()


#---------------------------------------------------------------------------------------------
# Batches


def flip_box(box, width):
    x1, y1, x2, y2 = box
    return (width - x2, y1, width - x1, y2)


@dataclass
class GanBatch:
    """One training batch on the training device.

    condition: (N, C, H, W) generator input (one-hot Su + instance edges + box mask, or the
               colour map for the translator).
    target:    (N, 3, H, W) in [-1, 1] the ground truth (Yc, or the photo for the translator).
    mask:      (N, 1, H, W) M of Eq 5 (1 in the box), or None when nothing is fused.
    boxes:     per sample (x1, y1, x2, y2), half-open; empty for the translator.
    """
    condition: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor | None = None
    boxes: tuple = ()

    def map_tensors(self, function) -> "GanBatch":
        """A batch of function(tensor) for condition, target and mask (a None mask stays)."""
        return GanBatch(condition=function(self.condition), target=function(self.target),
                        mask=None if self.mask is None else function(self.mask),
                        boxes=self.boxes)

    def to(self, device, non_blocking: bool = False) -> "GanBatch":
        """The batch on `device` (non_blocking: asynchronous from pinned memory)."""
        return self.map_tensors(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "GanBatch":
        """A copy in page-locked memory (DataLoader's pin_memory calls it)."""
        return self.map_tensors(lambda t: t.pin_memory())

    def fuse(self, generated: torch.Tensor) -> torch.Tensor:
        """Eq 5: Ŷ = Ỹ·M + Yu·(1 − M). Yu equals Yc outside the box, so the target serves as Yu."""
        if self.mask is None:
            return generated
        return generated * self.mask + self.target * (1 - self.mask)


def edit_batch(split: SplitArrays, spec: DatasetSpec, indices, edits, flips, device) -> GanBatch:
    """GanBatch for images `indices` with their EditBox `edits` (already flipped when the flag in
    `flips` is set: the maps are mirrored here)."""
    incompletes, edge_maps, masks, colours = [], [], [], []
    for index, edit, flip in zip(indices, edits, flips):
        labels, instances = split.labels[index], split.instances[index]
        if flip:
            labels, instances = labels[:, ::-1], instances[:, ::-1]
        incomplete, edited_instances, mask = edit_inputs(labels, instances, edit)
        incompletes.append(incomplete)
        edge_maps.append(instance_edges(edited_instances))
        masks.append(mask)
        colours.append(spec.palette[labels])
    incomplete = torch.from_numpy(np.stack(incompletes)).long().to(device)
    mask = torch.from_numpy(np.stack(masks)).to(device)
    condition = condition_tensor(incomplete, torch.from_numpy(np.stack(edge_maps)).to(device),
                                 mask, spec.num_labels)
    return GanBatch(condition=condition, target=to_unit_range(np.stack(colours)).to(device),
                    mask=mask.unsqueeze(1), boxes=tuple(e.box for e in edits))


def translator_batch(split: SplitArrays, spec: DatasetSpec, indices, flips, device) -> GanBatch:
    """G_I batch: colour map Yc -> photo."""
    colours, photos = [], []
    for index, flip in zip(indices, flips):
        colour, photo = spec.palette[split.labels[index]], split.photos[index]
        if flip:
            colour, photo = colour[:, ::-1], photo[:, ::-1]
        colours.append(colour)
        photos.append(photo)
    return GanBatch(condition=to_unit_range(np.stack(colours)).to(device),
                    target=to_unit_range(np.stack(photos)).to(device))


class EditTask:
    """Structure-generator training data: a random eligible box per image per epoch (paper §4),
    a random horizontal flip, a shuffled order -- all drawn from (seed, epoch)."""

    def __init__(self, split: SplitArrays, spec: DatasetSpec, train_boxes: dict, *,
                 batch_size: int, flip: bool, seed: int):
        self.split, self.spec, self.batch_size, self.flip, self.seed = \
            split, spec, batch_size, flip, seed
        self.usable = [i for i, name in enumerate(split.names) if train_boxes.get(name)]
        if not self.usable:
            raise ValueError("no training image has an eligible box (check size_threshold)")
        self.boxes = train_boxes
        self.condition_channels = condition_channels(spec)

    def __len__(self):
        return -(-len(self.usable) // self.batch_size)

    def plan(self, epoch: int) -> list:
        """The epoch's batches as plans (image indices, EditBox per image, flip flags and what a
        subclass draws after them): every random draw of the epoch, in order, so building the
        batches (`build`, possibly in DataLoader workers) is a pure function of the plan."""
        rng = np.random.default_rng([self.seed, epoch])
        order = [self.usable[i] for i in rng.permutation(len(self.usable))]
        width = self.split.labels.shape[-1]
        plans = []
        for start in range(0, len(order), self.batch_size):
            indices = order[start:start + self.batch_size]
            edits, flips = [], []
            for index in indices:
                choices = self.boxes[self.split.names[index]]
                edit = choices[rng.integers(len(choices))]
                flip = bool(self.flip and rng.random() < 0.5)
                if flip:
                    edit = EditBox(edit.image, edit.label, flip_box(edit.box, width))
                edits.append(edit)
                flips.append(flip)
            plans.append((indices, edits, flips, self.plan_extra(indices, rng)))
        return plans

    def plan_extra(self, indices, rng):
        """What a subclass draws for a batch after its boxes and flips (nothing here)."""
        return None

    def build(self, plan) -> GanBatch:
        """The CPU batch of one plan."""
        indices, edits, flips, _extra = plan
        return edit_batch(self.split, self.spec, indices, edits, flips, "cpu")

    def epoch(self, epoch: int, device):
        for plan in self.plan(epoch):
            yield self.build(plan).to(device)


class TranslationTask:
    """G_I training data: every image once per epoch, shuffled, random flips."""

    def __init__(self, split: SplitArrays, spec: DatasetSpec, *, batch_size: int, flip: bool,
                 seed: int):
        self.split, self.spec, self.batch_size, self.flip, self.seed = \
            split, spec, batch_size, flip, seed
        self.condition_channels = 3

    def __len__(self):
        return -(-len(self.split.names) // self.batch_size)

    def plan(self, epoch: int) -> list:
        """The epoch's (image indices, flip flags) per batch, drawn from (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.split.names))
        return [(indices, [bool(self.flip and rng.random() < 0.5) for _ in indices])
                for indices in (order[start:start + self.batch_size]
                                for start in range(0, len(order), self.batch_size))]

    def build(self, plan) -> GanBatch:
        indices, flips = plan
        return translator_batch(self.split, self.spec, indices, flips, "cpu")

    def epoch(self, epoch: int, device):
        for plan in self.plan(epoch):
            yield self.build(plan).to(device)


def check_boxes(path: str, boxes: dict, split, spec) -> None:
    """Every box of a box list names an image of `split`, lies inside it and has a label of the
    dataset's palette (a hand-edited or stale list fails here, naming the file)."""
    height, width = split.labels.shape[1:]
    names = set(split.names)
    for image, entries in boxes.items():
        if image not in names:
            raise ValueError(f"{path}: image {image} is not in the prepared split")
        for entry in entries:
            x1, y1, x2, y2 = entry.box
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                raise ValueError(f"{path}: box {entry.box} of image {image} is empty or outside "
                                 f"the {width}x{height} image")
            if not 0 <= entry.label < spec.num_labels:
                raise ValueError(f"{path}: label {entry.label} of image {image} is outside the "
                                 f"{spec.name} palette (0..{spec.num_labels - 1})")
