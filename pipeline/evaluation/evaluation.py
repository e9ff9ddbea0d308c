"""Evaluate trained rows on the fixed seed-679 test boxes: redraw each box (Ỹ = G(Su, B)),
fuse (Eq 5), read labels back by nearest palette colour, score tIOU / hamm inside the box,
translate Ŷ with the dataset's G_I and score FID against the test photos.

Inpainting (Table 3): complete every seed-679 hole of every test photo (test_masks.csv), score
SSIM / L1 over the hole (pipeline.evaluation.metrics) and FID of the completed photos against the ground
truth, for the GL rows and the inpainting floors."""
from __future__ import annotations

import json
import logging
import os
import shutil
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from pipeline.evaluation import floors
from pipeline.data.boxes import BOX_CONVENTIONS, box_mask, scored_box
from pipeline.config.sections import Params
from pipeline.data.datasets import colour_to_labels, read_split
from pipeline.data.sets import get_spec
from pipeline.data.inputs import check_boxes, edit_batch, from_unit_range, read_boxes, to_unit_range
from pipeline.models.inpainting import complete, read_test_holes
from pipeline.evaluation.metrics import FIDScorer, hamm, hole_l1, hole_ssim, l1, ssim, tiou
from pipeline.config.loading import seed_dir
from pipeline.models.model_files import RESOURCES_FILE, SUMMARY_FILE
from pipeline.models.twosm_prediction import by_label_rule, edited_map, predict_window
from pipeline.atomic import replace_dir

log = logging.getLogger(__name__)


def test_items(dataset: str, data_dir: str):
    """(spec, test split, [(image index, EditBox)]) of a prepared dataset, in test-split order:
    the seed-679 test boxes every row is scored on."""
    spec = get_spec(dataset)
    split = read_split(os.path.join(data_dir, "test.h5"))
    boxes_path = os.path.join(data_dir, "test_boxes.csv")
    boxes = read_boxes(boxes_path)
    check_boxes(boxes_path, boxes, split, spec)
    index = {name: i for i, name in enumerate(split.names)}
    items = [(index[name], boxes[name][0]) for name in split.names if name in boxes]
    if len(items) < 2:
        raise ValueError(f"{boxes_path}: {len(items)} test boxes; need at least 2")
    return spec, split, items


class EditedMap(NamedTuple):
    """One test box redrawn by a generator. `labels`: the edited map's labels (what tIOU and
    hamm score); `colour`: the edited colour map (H, W, 3) uint8 (Ŷ, or the palette of a TwoSM
    map). With observe=True: `observed`, the model's own labels where the input showed it the
    answer (a colour row: Ỹ decoded by nearest palette colour; TwoSM: the context argmax in its
    window), true in `observed_region` (outside the box, inside a TwoSM window); `context`, a
    TwoSM row's edited map by the context argmax alone (beside the painted labels)."""
    index: int
    edit: object
    labels: np.ndarray
    colour: np.ndarray
    observed: np.ndarray | None = None
    observed_region: np.ndarray | None = None
    context: np.ndarray | None = None


def _outside(shape, box, window=None) -> np.ndarray:
    """The pixels outside the box (inside `window`, when given): where the input shows the
    model the answer."""
    region = (box_mask(window, *shape).astype(bool) if window is not None
              else np.ones(shape, dtype=bool))
    return region & ~box_mask(box, *shape).astype(bool)


@torch.no_grad()
def twosm_edited_maps(generator, split, spec, items, batch_size: int = 8,
                      observe: bool = False):
    """edited_maps of a two-stream generator: its labels come from its streams
    (pipeline.models.twosm_prediction), with no colour round trip, one box at a time."""
    device = next(generator.parameters()).device
    for index, edit in items:
        labels = split.labels[index]
        prediction = predict_window(generator, generator.observation, labels,
                                    split.instances[index], edit, spec, device)
        painted = edited_map(labels, prediction, prediction.painted, edit.box)
        context = edited_map(labels, prediction, prediction.context, edit.box)
        predicted = by_label_rule(generator, painted, context)
        extra = {}
        if observe:
            wx1, wy1, wx2, wy2 = prediction.window
            observed = labels.copy()
            observed[wy1:wy2, wx1:wx2] = prediction.context
            extra = {"observed": observed, "context": context,
                     "observed_region": _outside(labels.shape, edit.box, prediction.window)}
        yield EditedMap(index, edit, predicted,
                        spec.palette[predicted].astype(np.uint8), **extra)


@torch.no_grad()
def edited_maps(generator, split, spec, items, batch_size: int = 8, observe: bool = False):
    """Redraw each (image, box) of `items` with a colour-map `generator` (on its own device) and
    fuse (Eq 5): one EditedMap per item, in order; the labels are read back by nearest palette
    colour. (A row kind names its own: pipeline.kinds, `edited_maps`.)"""
    device = next(generator.parameters()).device
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        batch = edit_batch(split, spec, [i for i, _ in chunk], [edit for _, edit in chunk],
                           [False] * len(chunk), device)
        raw = generator(batch.condition)
        fused_uint8 = from_unit_range(batch.fuse(raw))
        raw_uint8 = from_unit_range(raw) if observe else [None] * len(chunk)
        for (index, edit), colour, raw_colour in zip(chunk, fused_uint8, raw_uint8):
            extra = {}
            if observe:
                extra = {"observed": colour_to_labels(raw_colour, spec.palette),
                         "observed_region": _outside(colour.shape[:2], edit.box)}
            yield EditedMap(index, edit, colour_to_labels(colour, spec.palette), colour,
                            **extra)


def score_edits(draw, generator, split, spec, items, batch_size: int = 8,
                box_convention: str = "whole"):
    """Redraw, fuse and score every test box (`draw`: edited_maps or twosm_edited_maps, the
    row kind's) on its scored part (pipeline.data.boxes.scored_box): (per-box tiou list, hamm
    list, fused colour maps (N, H, W, 3) uint8)."""
    tious, hamms, fused_maps = [], [], []
    for edited in draw(generator, split, spec, items, batch_size):
        truth = split.labels[edited.index]
        box = scored_box(edited.edit.box, box_convention)
        tious.append(tiou(edited.labels, truth, box, edited.edit.label))
        hamms.append(hamm(edited.labels, truth, box))
        fused_maps.append(edited.colour)
    return tious, hamms, np.stack(fused_maps)


class HeldBackBoxes:
    """The first `count` seed-679 test boxes of a dataset, scored during training (the learning
    curves of tIOU / hamm; the floors are drawn on the same boxes)."""

    def __init__(self, dataset: str, data_dir: str, count: int, draw,
                 box_convention: str = "whole"):
        self.spec, self.split, items = test_items(dataset, data_dir)
        self.items = items[:count]
        self.box_convention = box_convention
        self.draw = draw   # the row kind's edited_maps

    def scores(self, generator) -> dict:
        tious, hamms, _ = score_edits(self.draw, generator, self.split, self.spec, self.items,
                                      box_convention=self.box_convention)
        return {"tiou": float(np.mean(tious)), "hamm": float(np.mean(hamms))}


class BoxTestSet:
    """The seed-679 test boxes of one dataset, scored for the structure and TwoSM rows: tIOU
    / hamm inside the box (on its scored part, `box_convention`), FID of the translated Ŷ
    (G_I: `translator`) against the test photos; the floor rows (pipeline.evaluation.floors) on the same
    boxes."""
    columns = ["row", "dataset", "seed", "image", "label", "tiou", "hamm"]

    def __init__(self, dataset: str, data_dir: str, translator, device,
                 box_convention: str = "whole"):
        self.dataset = dataset
        self.spec, self.split, self.items = test_items(dataset, data_dir)
        self.box_convention = box_convention
        self.translator = translator
        self.device = device
        self.fid = None
        self.real_features = None
        train = read_split(os.path.join(data_dir, "train.h5"))
        self.mean_masks = floors.mean_masks(train.labels, train.instances, train.names,
                                            read_boxes(os.path.join(data_dir, "boxes.csv"),
                                                       split="train"))

    def use_fid(self, fid: FIDScorer) -> None:
        """Score with `fid`: the FID features of the real test photos."""
        self.fid = fid
        photos = self.split.photos[[i for i, _ in self.items]]
        self.real_features = fid.features(photos)

    def counts(self) -> dict:
        return {"test_boxes": len(self.items)}

    @torch.no_grad()
    def run(self, generator, draw, batch_size: int = 8):
        """({"tiou": per-box list, "hamm": ...}, (fused colour maps, translated photos)) of a
        row's generator, its boxes drawn by `draw` (the row kind's edited_maps)."""
        tious, hamms, fused = score_edits(draw, generator, self.split, self.spec, self.items,
                                          batch_size, self.box_convention)
        photos = [from_unit_range(self.translator(to_unit_range(fused[i:i + batch_size])
                                                  .to(self.device)))
                  for i in range(0, len(fused), batch_size)]
        return {"tiou": tious, "hamm": hamms}, (fused, np.concatenate(photos))

    def means(self, values: dict, outputs=None) -> dict:
        """The mean of every metric over the boxes, and the FID of the translated photos when
        there are outputs (the floors have none)."""
        means = {metric: float(np.mean(scores)) for metric, scores in values.items()}
        if outputs is not None:
            means[self.fid.metric_name] = self.fid.distance(self.real_features,
                                                            self.fid.features(outputs[1]))
        return means

    def records(self, row_name: str, seed: int, values: dict) -> list:
        """One scores.csv record per test box."""
        return [{"row": row_name, "dataset": self.dataset, "seed": seed,
                 "image": self.split.names[index], "label": edit.label, "tiou": t, "hamm": h}
                for (index, edit), t, h in zip(self.items, values["tiou"], values["hamm"])]

    def floor_scores(self, floor: str, box_convention: str | None = None):
        """(tiou list, hamm list) of a floor row (pipeline.evaluation.floors) on the test boxes, scored
        under `box_convention` (default: the evaluation's)."""
        convention = box_convention or self.box_convention
        tious, hamms = [], []
        for index, edit in self.items:
            truth = self.split.labels[index]
            if floor == "fill-box":
                predicted = floors.fill_box_prediction(truth, edit.box, edit.label)
            else:
                predicted = floors.mean_mask_prediction(truth, edit.box, edit.label,
                                                        self.mean_masks)
            box = scored_box(edit.box, convention)
            tious.append(tiou(predicted, truth, box, edit.label))
            hamms.append(hamm(predicted, truth, box))
        return tious, hamms

    def floors(self):
        """(row name, scores, outputs (None), extra metrics) of every floor row: scored under
        the evaluation's box convention, with its means under every convention beside."""
        for floor in floors.FLOORS:
            by_convention = {c: self.floor_scores(floor, c) for c in BOX_CONVENTIONS}
            tious, hamms = by_convention[self.box_convention]
            extra = {f"{metric}_{convention}_box": float(np.mean(scores))
                     for convention, values in by_convention.items()
                     for metric, scores in zip(("tiou", "hamm"), values)}
            yield (floors.floor_row_name(floor, self.dataset), {"tiou": tious, "hamm": hamms},
                   None, extra)

    def save(self, folder: str, row_name: str, outputs, grid_images: int) -> None:
        """A row's examples (the first grid_images test boxes: samples/<row>.npz, the
        figures) and every test box's result map (samples/results/<row>.npz, HuEv)."""
        fused, photos = outputs
        save_results(os.path.join(folder, RESULTS_SUBDIR), row_name, self, fused)
        shown = [index for index, _ in self.items[:grid_images]]
        np.savez_compressed(
            os.path.join(folder, f"{row_name}.npz"), fused=fused[:grid_images],
            translated=photos[:grid_images], truth=self.spec.palette[self.split.labels[shown]],
            photo=self.split.photos[shown],
            boxes=np.array([edit.box for _, edit in self.items[:grid_images]]),
            labels=np.array([edit.label for _, edit in self.items[:grid_images]]))


def read_summary(model_dir: str) -> dict:
    path = os.path.join(model_dir, SUMMARY_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (run its training stage)")
    try:
        with open(path) as f:
            summary = json.load(f)
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    missing = [k for k in ("q", "seed", "vgg_source") if k not in summary]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)} (rerun its training stage)")
    return summary


def _read_resources(runs) -> dict:
    """run name -> its resources.json, for (name, folder) pairs; missing files are skipped."""
    found = {}
    for name, folder in runs:
        path = os.path.join(folder, RESOURCES_FILE)
        if os.path.exists(path):
            with open(path) as f:
                found[name] = json.load(f)
    return found


def row_resources(row_names, seeds, live_root: str = "reports/train") -> dict:
    """'<row>-seed<k>' -> that training run's resources.json (training time over all its
    sittings, resumes, memory), for any kind of row (segmentation or inpainting)."""
    return _read_resources((f"{row}-seed{seed}", seed_dir(live_root, row, seed))
                           for row in row_names for seed in seeds)


def collect_resources(params: Params, row_names, live_root: str = "reports/train") -> dict:
    """run name -> its resources.json (training time, memory; written by the training stages
    next to their dvclive logs, hidden from DVC by .dvcignore), the rows' runs and their
    datasets' translators. Missing files are skipped."""
    found = row_resources(row_names, params.seeds, live_root)
    found.update(_read_resources(
        (f"translator-{d}", os.path.join(live_root, f"translator-{d}"))
        for d in sorted({params.row(row).dataset for row in row_names})))
    return found


RESULTS_SUBDIR = "results"  # <samples_dir>/results/<row>.npz: every test box's result map


def save_results(folder: str, row_name: str, data: BoxTestSet, fused) -> None:
    """Every test box's fused result map Ŷ of a row (first seed), with the test image names,
    boxes, target labels and the ground-truth colour maps: the items of the human evaluation
    (pipeline.apps.huev). One npz per row, the boxes in test order."""
    os.makedirs(folder, exist_ok=True)
    indices = [index for index, _ in data.items]
    np.savez_compressed(
        os.path.join(folder, f"{row_name}.npz"), fused=np.asarray(fused, dtype=np.uint8),
        names=np.array([data.split.names[i] for i in indices]),
        boxes=np.array([edit.box for _, edit in data.items]),
        labels=np.array([edit.label for _, edit in data.items]),
        truth=data.spec.palette[data.split.labels[indices]])


def evaluate(params: Params, kinds: dict, test_sets: dict, *, device, load,
             samples_dir: str, progress: bool = True) -> dict:
    """The one evaluation loop of every table: the floors of every test set, then every row
    (row name -> its kind, pipeline.kinds), trained once per seed of params.seeds, on its
    dataset's test set (dataset -> BoxTestSet / InpaintingTestSet), all on the same seed-679
    items. `load(model_dir, device, dataset=, kinds=)` reads a model file. Returns
    {"rows": row -> means over seeds and items, "scores": one record per (row, seed, item),
     "columns": the scores' columns, "conditions": device, FID and seeds}. Each row's examples
    (first seed) go to samples_dir (BoxTestSet.save / InpaintingTestSet.save).

    Every model file and training summary is read and checked before any scoring, and
    samples_dir is replaced only when every row is done."""
    summaries = {}
    for name, kind in kinds.items():
        dataset = kind.dataset(params, name)
        for seed in params.seeds:
            model_dir = kind.model_dir(name, seed)
            # readable, complete and of the row's kind and dataset, or a one-line error now
            load(model_dir, "cpu", dataset=dataset, kinds=(kind.name,))
            summaries[name, seed] = read_summary(model_dir)
    fid = FIDScorer(params.evaluate.fid_dims, params.evaluate.inception_weights_path, device)
    for test in test_sets.values():
        test.use_fid(fid)
    grid_images = params.evaluate.grid_images
    tmp_samples = samples_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp_samples, ignore_errors=True)
    os.makedirs(tmp_samples)
    metrics, scores = {}, []
    try:
        for test in test_sets.values():
            for name, values, outputs, extra in test.floors():
                scores.extend(test.records(name, -1, values))
                metrics[name] = {**test.means(values, outputs), **test.counts(), **extra}
                if outputs is not None:
                    test.save(tmp_samples, name, outputs, grid_images)
        runs = [(name, seed) for name in kinds for seed in params.seeds]
        per_seed = {}
        for name, seed in tqdm(runs, desc="evaluate", disable=not progress):
            kind = kinds[name]
            test = test_sets[kind.dataset(params, name)]
            values, outputs = kind.score(test, load(kind.model_dir(name, seed), device))
            scores.extend(test.records(name, seed, values))
            per_seed.setdefault(name, []).append(test.means(values, outputs))
            if seed == params.seeds[0]:
                test.save(tmp_samples, name, outputs, grid_images)
        for name, values in per_seed.items():
            test = test_sets[kinds[name].dataset(params, name)]
            metrics[name] = {
                **{key: float(np.mean([v[key] for v in values])) for key in values[0]},
                **test.counts(), "seeds": len(values),
                "q": summaries[name, params.seeds[0]]["q"]}
        replace_dir(tmp_samples, samples_dir)
    finally:
        shutil.rmtree(tmp_samples, ignore_errors=True)
    columns = next(iter(test_sets.values())).columns if test_sets else BoxTestSet.columns
    conditions = {"device": str(device), "fid_metric": fid.metric_name,
                  "fid_source": fid.source, "seeds": list(params.seeds),
                  "vgg_sources": sorted({s["vgg_source"] for s in summaries.values()})}
    return {"rows": metrics, "scores": scores, "columns": columns, "conditions": conditions}


#---------------------------------------------------------------------------------------------
# Inpainting (Table 3)

INPAINTING_METRICS = ("ssim", "l1", "ssim_image", "l1_image")


class InpaintingTestSet:
    """The test photos and their seed-679 holes (test_masks.csv, in file order): the items every
    inpainting row and floor is scored on. `images` / `holes` keep only the first N test images
    / their holes of repeat < N (the held-back slice of the learning curves)."""

    columns = ["row", "seed", "image", "repeat", *INPAINTING_METRICS]

    def __init__(self, data_dir: str, width: int, height: int, repeats: int,
                 images: int | None = None, holes: int | None = None, *, dataset: str = "",
                 fid_holes: int = 0):
        self.dataset, self.fid_holes = dataset, fid_holes
        self.floor_fill = None   # the floors' fill colour (evaluation: the kind sets it)
        path = os.path.join(data_dir, "test.h5")
        self.split = read_split(path)
        if self.split.photos.shape[1:3] != (height, width):
            raise ValueError(f"{path}: photos are {self.split.photos.shape[2]}x"
                             f"{self.split.photos.shape[1]}, params inpainting is "
                             f"{width}x{height} (rerun the prepare stage)")
        items = read_test_holes(os.path.join(data_dir, "test_masks.csv"), self.split.names,
                                width, height, repeats)
        if images is not None:
            items = [item for item in items if item[0] in set(self.split.names[:images])]
        if holes is not None:
            items = [item for item in items if item[1] < holes]  # repeat 0..holes-1
        index = {name: i for i, name in enumerate(self.split.names)}
        self.names = [name for name, _, _ in items]
        self.repeats = [repeat for _, repeat, _ in items]
        self.holes = [hole for _, _, hole in items]
        self.image_index = np.array([index[name] for name in self.names])
        self.truth = self.split.photos[self.image_index]

    def __len__(self):
        return len(self.holes)

    def score(self, completed: np.ndarray) -> dict:
        """metric -> per-item list: SSIM / L1 over the hole, and over the whole image."""
        scores = {name: [] for name in INPAINTING_METRICS}
        for pred, truth, hole in zip(completed, self.truth, self.holes):
            scores["ssim"].append(hole_ssim(pred, truth, hole))
            scores["l1"].append(hole_l1(pred, truth, hole))
            scores["ssim_image"].append(ssim(pred, truth))
            scores["l1_image"].append(l1(pred, truth))
        return scores

    def use_fid(self, fid: FIDScorer) -> None:
        """Score with `fid`: FID compares the completed photos of the first fid_holes holes
        of every image with the ground-truth photos of the same items."""
        self.fid = fid
        unique = sorted(set(self.image_index.tolist()))
        self.fid_items = [i for i, repeat in enumerate(self.repeats) if repeat < self.fid_holes]
        real_unique = fid.features(self.split.photos[unique])
        self.real_features = real_unique[[unique.index(self.image_index[i])
                                          for i in self.fid_items]]

    def counts(self) -> dict:
        return {"test_images": len(set(self.image_index.tolist())), "test_holes": len(self),
                "fid_holes": len(self.fid_items)}

    def run(self, generator):
        """(scores, completed photos) of a row's completion network (its own hole `fill`)."""
        completed = complete(generator, self.truth, self.holes, generator.fill)
        return self.score(completed), completed

    def means(self, values: dict, completed) -> dict:
        """The mean of every metric over the holes, and the FID of the completed photos."""
        return {**{metric: float(np.mean(values[metric])) for metric in INPAINTING_METRICS},
                self.fid.metric_name: self.fid.distance(
                    self.real_features, self.fid.features(completed[self.fid_items]))}

    def records(self, row_name: str, seed: int, values: dict) -> list:
        """One inpainting_scores.csv record per (test image, hole)."""
        return [{"row": row_name, "seed": seed, "image": name, "repeat": repeat,
                 **{metric: values[metric][i] for metric in INPAINTING_METRICS}}
                for i, (name, repeat) in enumerate(zip(self.names, self.repeats))]

    def floors(self):
        """(row name, scores, completed photos, {}) of every inpainting floor."""
        for floor in floors.INPAINTING_FLOORS:
            completed = self.floor(floor, self.floor_fill)
            yield floors.floor_row_name(floor, self.dataset), self.score(completed), completed, {}

    def save(self, folder: str, row_name: str, completed, grid_images: int) -> None:
        """Example completions: the first hole of each of the first grid_images photos."""
        shown = [self.names.index(name) for name in self.split.names[:grid_images]]
        np.savez_compressed(os.path.join(folder, f"{row_name}.npz"),
                            completed=completed[shown], truth=self.truth[shown],
                            masked=np.stack([floors.mean_fill(self.truth[i], self.holes[i],
                                                              self.floor_fill) for i in shown]),
                            holes=np.array([self.holes[i] for i in shown]),
                            names=np.array([self.names[i] for i in shown]))

    def floor(self, name: str, fill) -> np.ndarray:
        """The completed photos of an inpainting floor (pipeline.evaluation.floors)."""
        if name == "mean-fill":
            return np.stack([floors.mean_fill(p, h, fill) for p, h in zip(self.truth, self.holes)])
        if name == "biharmonic":
            return np.stack([floors.biharmonic_fill(p, h) for p, h in zip(self.truth, self.holes)])
        raise ValueError(f"unknown inpainting floor {name!r} "
                         f"({', '.join(floors.INPAINTING_FLOORS)})")


class HeldBackHoles:
    """The first seed-679 hole of each of the first `count` test images, scored during training
    (the learning curves of SSIM / L1 over the hole; one hole per image keeps them cheap)."""

    def __init__(self, data_dir: str, params: Params, count: int, fill):
        ip = params.inpainting
        self.test = InpaintingTestSet(data_dir, ip.width, ip.height, ip.test_holes, images=count,
                                      holes=1)
        self.fill = fill

    def scores(self, generator) -> dict:
        completed = complete(generator, self.test.truth, self.test.holes, self.fill)
        scores = self.test.score(completed)
        return {"ssim": float(np.mean(scores["ssim"])), "l1": float(np.mean(scores["l1"]))}
