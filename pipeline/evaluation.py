"""Evaluate trained rows on the fixed seed-679 test boxes: redraw each box (Ỹ = G(Su, B)),
fuse (Eq 5), read labels back by nearest palette colour, score tIOU / hamm inside the box,
translate Ŷ with the dataset's G_I and score FID against the test photos.

Inpainting (Table 3): complete every seed-679 hole of every test photo (test_masks.csv), score
SSIM / L1 over the hole (pipeline.metrics) and FID of the completed photos against the ground
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

from pipeline import floors, trainer
from pipeline.boxes import BOX_CONVENTIONS, scored_box
from pipeline.config import Params
from pipeline.datasets import colour_to_labels, get_spec, read_split
from pipeline.diagnostics import box_mask
from pipeline.inputs import check_boxes, edit_batch, from_unit_range, read_boxes, to_unit_range
from pipeline.inpainting import complete, mean_colour, read_test_holes
from pipeline.metrics import FIDScorer, hamm, hole_l1, hole_ssim, l1, ssim, tiou
from pipeline.config import seed_dir
from pipeline.model_files import RESOURCES_FILE, SUMMARY_FILE, load_generator
from pipeline.twosm import TwoStreamGenerator, by_label_rule, edited_map, predict_window
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
    region = box_mask(shape, window) if window is not None else np.ones(shape, dtype=bool)
    return region & ~box_mask(shape, box)


@torch.no_grad()
def edited_maps(generator, split, spec, items, batch_size: int = 8, observe: bool = False):
    """Redraw each (image, box) of `items` with `generator` (on its own device) and fuse (Eq 5):
    one EditedMap per item, in order. A colour row's labels are read back by nearest palette
    colour; a TwoSM generator's come from its streams (pipeline.twosm), with no colour round
    trip."""
    device = next(generator.parameters()).device
    if isinstance(generator, TwoStreamGenerator):
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
        return
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


def score_edits(generator, split, spec, items, batch_size: int = 8,
                box_convention: str = "whole"):
    """Redraw, fuse and score every test box (edited_maps) on its scored part
    (pipeline.boxes.scored_box): (per-box tiou list, hamm list, fused colour maps (N, H, W, 3)
    uint8)."""
    tious, hamms, fused_maps = [], [], []
    for edited in edited_maps(generator, split, spec, items, batch_size):
        truth = split.labels[edited.index]
        box = scored_box(edited.edit.box, box_convention)
        tious.append(tiou(edited.labels, truth, box, edited.edit.label))
        hamms.append(hamm(edited.labels, truth, box))
        fused_maps.append(edited.colour)
    return tious, hamms, np.stack(fused_maps)


class HeldBackBoxes:
    """The first `count` seed-679 test boxes of a dataset, scored during training (the learning
    curves of tIOU / hamm; the floors are drawn on the same boxes)."""

    def __init__(self, dataset: str, data_dir: str, count: int, box_convention: str = "whole"):
        self.spec, self.split, items = test_items(dataset, data_dir)
        self.items = items[:count]
        self.box_convention = box_convention

    def scores(self, generator) -> dict:
        tious, hamms, _ = score_edits(generator, self.split, self.spec, self.items,
                                      box_convention=self.box_convention)
        return {"tiou": float(np.mean(tious)), "hamm": float(np.mean(hamms))}


class DatasetEvaluation:
    """Test split, test boxes, G_I, the floor rows and the real-photo FID features of one
    dataset."""

    def __init__(self, dataset: str, data_dir: str, translator_dir: str, device,
                 box_convention: str = "whole"):
        self.spec, self.split, self.items = test_items(dataset, data_dir)
        self.box_convention = box_convention
        self.translator = load_generator(translator_dir, device, dataset=dataset,
                                         kinds=("translator",))
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

    @torch.no_grad()
    def run(self, generator, batch_size: int = 8):
        """(per-image tiou list, hamm list, fused colour maps, translated photos) for a row."""
        tious, hamms, fused = score_edits(generator, self.split, self.spec, self.items,
                                          batch_size, self.box_convention)
        photos = [from_unit_range(self.translator(to_unit_range(fused[i:i + batch_size])
                                                  .to(self.device)))
                  for i in range(0, len(fused), batch_size)]
        return tious, hamms, fused, np.concatenate(photos)

    def floor_scores(self, floor: str, box_convention: str | None = None):
        """(tiou list, hamm list) of a floor row (pipeline.floors) on the test boxes, scored
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


def collect_resources(params: Params, row_names, live_root: str = "reports/train") -> dict:
    """run name -> its resources.json (training time, memory; written by the training stages
    next to their dvclive logs, hidden from DVC by .dvcignore). Missing files are skipped."""
    runs = [(f"{row}-seed{seed}", seed_dir(live_root, row, seed))
            for row in row_names for seed in params.seeds]
    runs += [(f"translator-{d}", os.path.join(live_root, f"translator-{d}"))
             for d in sorted({params.row(row).dataset for row in row_names})]
    found = {}
    for name, folder in runs:
        path = os.path.join(folder, RESOURCES_FILE)
        if os.path.exists(path):
            with open(path) as f:
                found[name] = json.load(f)
    return found


SCORE_COLUMNS = ["row", "dataset", "seed", "image", "label", "tiou", "hamm"]
RESULTS_SUBDIR = "results"  # <samples_dir>/results/<row>.npz: every test box's result map


def save_results(folder: str, row_name: str, data: DatasetEvaluation, fused) -> None:
    """Every test box's fused result map Ŷ of a row (first seed), with the test image names,
    boxes, target labels and the ground-truth colour maps: the items of the human evaluation
    (pipeline.huev). One npz per row, the boxes in test order."""
    os.makedirs(folder, exist_ok=True)
    indices = [index for index, _ in data.items]
    np.savez_compressed(
        os.path.join(folder, f"{row_name}.npz"), fused=np.asarray(fused, dtype=np.uint8),
        names=np.array([data.split.names[i] for i in indices]),
        boxes=np.array([edit.box for _, edit in data.items]),
        labels=np.array([edit.label for _, edit in data.items]),
        truth=data.spec.palette[data.split.labels[indices]])


def evaluate(params: Params, row_names, *, data_root: str, model_root: str,
             samples_dir: str, progress: bool = True) -> dict:
    """Metrics of every row, trained once per seed of params.seeds, and of the floor rows of
    every dataset (pipeline.floors), all on the same seed-679 test boxes; the run conditions
    (data source, device, which weights were used). Returns
    {"rows": row -> means over seeds and boxes, "scores": one record per (row, seed, box),
     "conditions": ...}. Example maps and photos of the first evaluate.grid_images test boxes
    (first seed) go to samples_dir/<row>.npz, every test box's result map (first seed) to
    samples_dir/results/<row>.npz (the HuEv study items, pipeline.huev).

    Every input (test splits, test boxes, translators, generators, summaries) is read and
    checked before any scoring, and samples_dir is replaced only when every row is done."""
    trainer.make_deterministic(params.train.seed, params.train.cpu_threads,
                                params.train.deterministic)
    device = trainer.pick_device(params.train.device)
    datasets, summaries = {}, {}
    for row_name in row_names:
        row = params.row(row_name)
        if row.dataset not in datasets:
            datasets[row.dataset] = DatasetEvaluation(
                row.dataset, os.path.join(data_root, row.dataset),
                os.path.join(model_root, f"translator-{row.dataset}"), device,
                params.box_convention)
        for seed in params.seeds:
            model_dir = seed_dir(model_root, row_name, seed)
            # readable, complete and of the row's dataset, or a one-line error now
            load_generator(model_dir, "cpu", dataset=row.dataset, kinds=("structure", "twosm"))
            summaries[row_name, seed] = read_summary(model_dir)
    fid = FIDScorer(params.evaluate.fid_dims, params.evaluate.inception_weights_path, device)
    for data in datasets.values():
        data.use_fid(fid)
    tmp_samples = samples_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp_samples, ignore_errors=True)
    os.makedirs(tmp_samples)
    metrics, scores = {}, []

    def record(row_name, dataset, seed, data, tious, hamms):
        scores.extend({"row": row_name, "dataset": dataset, "seed": seed,
                       "image": data.split.names[index], "label": edit.label,
                       "tiou": t, "hamm": h}
                      for (index, edit), t, h in zip(data.items, tious, hamms))

    try:
        for dataset, data in datasets.items():
            for floor in floors.FLOORS:
                # the floors under every box convention; the run's own one is the row's score
                by_convention = {c: data.floor_scores(floor, c) for c in BOX_CONVENTIONS}
                tious, hamms = by_convention[data.box_convention]
                name = floors.floor_row_name(floor, dataset)
                record(name, dataset, -1, data, tious, hamms)
                metrics[name] = {"tiou": float(np.mean(tious)), "hamm": float(np.mean(hamms)),
                                 "test_boxes": len(tious)}
                for convention, values in by_convention.items():
                    metrics[name].update({f"{metric}_{convention}_box": float(np.mean(v))
                                          for metric, v in zip(("tiou", "hamm"), values)})
        runs = [(row_name, seed) for row_name in row_names for seed in params.seeds]
        per_seed = {}
        for row_name, seed in tqdm(runs, desc="evaluate", disable=not progress):
            dataset = params.row(row_name).dataset
            data = datasets[dataset]
            generator = load_generator(seed_dir(model_root, row_name, seed), device)
            tious, hamms, fused, photos = data.run(generator)
            record(row_name, dataset, seed, data, tious, hamms)
            per_seed.setdefault(row_name, []).append(
                {"tiou": float(np.mean(tious)), "hamm": float(np.mean(hamms)),
                 fid.metric_name: fid.distance(data.real_features, fid.features(photos))})
            if seed != params.seeds[0]:
                continue
            save_results(os.path.join(tmp_samples, RESULTS_SUBDIR), row_name, data, fused)
            count = params.evaluate.grid_images
            shown = [index for index, _ in data.items[:count]]
            np.savez_compressed(
                os.path.join(tmp_samples, f"{row_name}.npz"), fused=fused[:count],
                translated=photos[:count], truth=data.spec.palette[data.split.labels[shown]],
                photo=data.split.photos[shown],
                boxes=np.array([edit.box for _, edit in data.items[:count]]),
                labels=np.array([edit.label for _, edit in data.items[:count]]))
        for row_name, values in per_seed.items():
            metrics[row_name] = {
                **{key: float(np.mean([v[key] for v in values])) for key in values[0]},
                "test_boxes": len(datasets[params.row(row_name).dataset].items),
                "seeds": len(values), "q": summaries[row_name, params.seeds[0]]["q"]}
        replace_dir(tmp_samples, samples_dir)
    finally:
        shutil.rmtree(tmp_samples, ignore_errors=True)
    conditions = {"data_source": params.data.label(params.datasets), "device": str(device),
                  "fid_metric": fid.metric_name, "fid_source": fid.source,
                  "vgg_sources": sorted({s["vgg_source"] for s in summaries.values()}),
                  "test_box_seed": params.evaluate.seed, "seeds": list(params.seeds),
                  "box_convention": params.box_convention}
    return {"rows": metrics, "scores": scores, "conditions": conditions}


#---------------------------------------------------------------------------------------------
# Inpainting (Table 3)

INPAINTING_SCORE_COLUMNS = ["row", "seed", "image", "repeat", "ssim", "l1", "ssim_image",
                            "l1_image"]
INPAINTING_METRICS = ("ssim", "l1", "ssim_image", "l1_image")


class InpaintingTestSet:
    """The test photos and their seed-679 holes (test_masks.csv, in file order): the items every
    inpainting row and floor is scored on. `images` / `holes` keep only the first N test images
    / their holes of repeat < N (the held-back slice of the learning curves)."""

    def __init__(self, data_dir: str, width: int, height: int, repeats: int,
                 images: int | None = None, holes: int | None = None):
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

    def floor(self, name: str, fill) -> np.ndarray:
        """The completed photos of an inpainting floor (pipeline.floors)."""
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


def inpainting_floor_row_name(floor: str, dataset: str) -> str:
    return f"floor-{floor}-{dataset}"


def evaluate_inpainting(params: Params, row_names, *, data_dir: str, model_root: str,
                        samples_dir: str, progress: bool = True) -> dict:
    """Table 3: SSIM / L1 (over the hole; whole image beside) and FID of every inpainting row
    (every seed of params.seeds) and of the inpainting floors, on the seed-679 holes of every test
    photo. FID compares the completed photos of the first inpainting.fid_holes holes of every
    image with the ground-truth photos of the same items.
    Returns {"rows": row -> means, "scores": one record per (row, seed, image, hole),
    "conditions": ...}. Example completions of the first evaluate.grid_images test images
    (their first hole, first seed) go to samples_dir/<row>.npz; samples_dir is replaced only
    when every row is done."""
    trainer.make_deterministic(params.train.seed, params.train.cpu_threads,
                                params.train.deterministic)
    device = trainer.pick_device(params.train.device)
    ip = params.inpainting
    test = InpaintingTestSet(data_dir, ip.width, ip.height, ip.test_holes)
    summaries = {}
    for row_name in row_names:
        params.inpainting_row(row_name)
        for seed in params.seeds:
            model_dir = seed_dir(model_root, row_name, seed)
            # readable and a GL completion network, or a one-line error now
            generator = load_generator(model_dir, "cpu", kinds=("inpainting",))
            if not hasattr(generator, "fill"):
                raise ValueError(f"{model_dir}: not a GL completion network (retrain the row)")
            summaries[row_name, seed] = read_summary(model_dir)
    floors_fill = mean_colour(read_split(os.path.join(data_dir, "train.h5")).photos)
    fid = FIDScorer(params.evaluate.fid_dims, params.evaluate.inception_weights_path, device)
    unique = sorted(set(test.image_index.tolist()))
    # FID: the completed photos of the first fid_holes holes of every image vs their ground truth
    fid_items = [i for i, repeat in enumerate(test.repeats) if repeat < ip.fid_holes]
    real_unique = fid.features(test.split.photos[unique])
    real = real_unique[[unique.index(test.image_index[i]) for i in fid_items]]
    shown = [test.names.index(name)  # the first hole of each of the first grid_images photos
             for name in test.split.names[:params.evaluate.grid_images]]
    tmp_samples = samples_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp_samples, ignore_errors=True)
    os.makedirs(tmp_samples)
    metrics, scores = {}, []

    def record(row_name, seed, values, completed):
        scores.extend({"row": row_name, "seed": seed, "image": name, "repeat": repeat,
                       **{metric: values[metric][i] for metric in INPAINTING_METRICS}}
                      for i, (name, repeat) in enumerate(zip(test.names, test.repeats)))
        return {**{metric: float(np.mean(values[metric])) for metric in INPAINTING_METRICS},
                fid.metric_name: fid.distance(real, fid.features(completed[fid_items]))}

    def save_samples(row_name, completed):
        np.savez_compressed(os.path.join(tmp_samples, f"{row_name}.npz"),
                            completed=completed[shown], truth=test.truth[shown],
                            masked=test.floor("mean-fill", floors_fill)[shown],
                            holes=np.array([test.holes[i] for i in shown]),
                            names=np.array([test.names[i] for i in shown]))

    try:
        for floor in floors.INPAINTING_FLOORS:
            name = inpainting_floor_row_name(floor, ip.dataset)
            completed = test.floor(floor, floors_fill)
            metrics[name] = {**record(name, -1, test.score(completed), completed),
                             "test_images": len(unique), "test_holes": len(test),
                             "fid_holes": len(fid_items)}
            save_samples(name, completed)
        runs = [(row_name, seed) for row_name in row_names for seed in params.seeds]
        per_seed = {}
        for row_name, seed in tqdm(runs, desc="evaluate inpainting", disable=not progress):
            generator = load_generator(seed_dir(model_root, row_name, seed), device)
            completed = complete(generator, test.truth, test.holes, generator.fill)
            per_seed.setdefault(row_name, []).append(
                record(row_name, seed, test.score(completed), completed))
            if seed == params.seeds[0]:
                save_samples(row_name, completed)
        for row_name, values in per_seed.items():
            summary = summaries[row_name, params.seeds[0]]
            metrics[row_name] = {
                **{key: float(np.mean([v[key] for v in values])) for key in values[0]},
                "test_images": len(unique), "test_holes": len(test),
                "fid_holes": len(fid_items), "seeds": len(values), "q": summary["q"]}
        replace_dir(tmp_samples, samples_dir)
    finally:
        shutil.rmtree(tmp_samples, ignore_errors=True)
    conditions = {"data_source": params.data.label([ip.dataset]), "device": str(device),
                  "fid_metric": fid.metric_name, "fid_source": fid.source,
                  "hole_seed": params.evaluate.seed, "holes_per_image": ip.test_holes,
                  "fid_holes_per_image": ip.fid_holes,
                  "size": f"{ip.width}x{ip.height}", "seeds": list(params.seeds),
                  "fill": list(floors_fill)}
    return {"rows": metrics, "scores": scores, "conditions": conditions}
