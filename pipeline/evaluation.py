"""Evaluate trained rows on the fixed seed-679 test boxes: redraw each box (Ỹ = G(Su, B)),
fuse (Eq 5), read labels back by nearest palette colour, score tIOU / hamm inside the box,
translate Ŷ with the dataset's G_I and score FID against the test photos."""
from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import torch
from tqdm import tqdm

from pipeline import trainer
from pipeline.config import Params
from pipeline.datasets import colour_to_labels, get_spec, read_split
from pipeline.inputs import edit_batch, from_unit_range, read_boxes, to_unit_range
from pipeline.metrics import FIDScorer, hamm, tiou
from pipeline.rows import SUMMARY_FILE, check_boxes, load_generator

log = logging.getLogger(__name__)


class DatasetEvaluation:
    """Test split, test boxes, G_I and the real-photo FID features of one dataset."""

    def __init__(self, dataset: str, data_dir: str, translator_dir: str, device):
        self.spec = get_spec(dataset)
        self.split = read_split(os.path.join(data_dir, "test.h5"))
        boxes_path = os.path.join(data_dir, "test_boxes.csv")
        boxes = read_boxes(boxes_path)
        check_boxes(boxes_path, boxes, self.split, self.spec)
        index = {name: i for i, name in enumerate(self.split.names)}
        self.items = [(index[name], boxes[name][0]) for name in self.split.names if name in boxes]
        if len(self.items) < 2:
            raise ValueError(f"{boxes_path}: {len(self.items)} test boxes; need at least 2")
        self.translator = load_generator(translator_dir, device)
        self.device = device
        self.fid = None
        self.real_features = None

    def use_fid(self, fid: FIDScorer) -> None:
        """Score with `fid`: the FID features of the real test photos."""
        self.fid = fid
        photos = self.split.photos[[i for i, _ in self.items]]
        self.real_features = fid.features(photos)

    @torch.no_grad()
    def run(self, generator, batch_size: int = 8):
        """(per-image tiou list, hamm list, fused colour maps, translated photos) for a row."""
        tious, hamms, fused_maps, photos = [], [], [], []
        for start in range(0, len(self.items), batch_size):
            chunk = self.items[start:start + batch_size]
            batch = edit_batch(self.split, self.spec, [i for i, _ in chunk],
                               [edit for _, edit in chunk], [False] * len(chunk), self.device)
            fused = batch.fuse(generator(batch.condition))
            fused_uint8 = from_unit_range(fused)
            translated = self.translator(to_unit_range(fused_uint8).to(self.device))
            for (index, edit), colour in zip(chunk, fused_uint8):
                predicted = colour_to_labels(colour, self.spec.palette)
                truth = self.split.labels[index]
                tious.append(tiou(predicted, truth, edit.box, edit.label))
                hamms.append(hamm(predicted, truth, edit.box))
            fused_maps.append(fused_uint8)
            photos.append(from_unit_range(translated))
        return tious, hamms, np.concatenate(fused_maps), np.concatenate(photos)


def read_summary(model_dir: str) -> dict:
    path = os.path.join(model_dir, SUMMARY_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (run its training stage)")
    try:
        with open(path) as f:
            summary = json.load(f)
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    missing = [k for k in ("q", "train_seconds", "vgg_source") if k not in summary]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)} (rerun its training stage)")
    return summary


def evaluate(params: Params, row_names, *, data_root: str, model_root: str,
             samples_dir: str, progress: bool = True) -> dict:
    """Metrics of every row (means over the test boxes), training time and memory, and the run
    conditions (data source, device, which weights were used); example maps and
    photos of the first evaluate.grid_images test boxes go to samples_dir/<row>.npz.

    Every input (test splits, test boxes, translators, generators, summaries) is read and
    checked before any scoring, and samples_dir is replaced only when every row is done."""
    trainer.make_deterministic(params.train.seed, params.train.cpu_threads)
    device = trainer.pick_device(params.train.device)
    datasets, summaries = {}, {}
    for row_name in row_names:
        row = params.row(row_name)
        if row.dataset not in datasets:
            datasets[row.dataset] = DatasetEvaluation(
                row.dataset, os.path.join(data_root, row.dataset),
                os.path.join(model_root, f"translator-{row.dataset}"), device)
        model_dir = os.path.join(model_root, row_name)
        load_generator(model_dir, "cpu")  # readable and complete, or a one-line error now
        summaries[row_name] = read_summary(model_dir)
    fid = FIDScorer(params.evaluate.fid_dims, params.evaluate.inception_weights_path, device)
    for data in datasets.values():
        data.use_fid(fid)
    tmp_samples = samples_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp_samples, ignore_errors=True)
    os.makedirs(tmp_samples)
    metrics, resources = {}, {}
    try:
        for row_name in tqdm(row_names, desc="evaluate", disable=not progress):
            data = datasets[params.row(row_name).dataset]
            generator = load_generator(os.path.join(model_root, row_name), device)
            tious, hamms, fused, photos = data.run(generator)
            summary = summaries[row_name]
            metrics[row_name] = {
                "tiou": float(np.mean(tious)), "hamm": float(np.mean(hamms)),
                fid.metric_name: fid.distance(data.real_features, fid.features(photos)),
                "test_boxes": len(tious), "q": summary["q"]}
            # Time and memory vary from run to run: kept apart from the reproducible metrics.
            resources[row_name] = {"train_seconds": summary["train_seconds"],
                                   **{k: v for k, v in summary.items() if k.startswith("mem_")}}
            count = params.evaluate.grid_images
            shown = [index for index, _ in data.items[:count]]
            np.savez_compressed(
                os.path.join(tmp_samples, f"{row_name}.npz"), fused=fused[:count],
                translated=photos[:count], truth=data.spec.palette[data.split.labels[shown]],
                photo=data.split.photos[shown],
                boxes=np.array([edit.box for _, edit in data.items[:count]]),
                labels=np.array([edit.label for _, edit in data.items[:count]]))
        shutil.rmtree(samples_dir, ignore_errors=True)
        os.replace(tmp_samples, samples_dir)
    finally:
        shutil.rmtree(tmp_samples, ignore_errors=True)
    conditions = {"data_source": params.data.source, "device": str(device),
                  "fid_metric": fid.metric_name, "fid_source": fid.source,
                  "vgg_sources": sorted({s["vgg_source"] for s in summaries.values()}),
                  "test_box_seed": params.evaluate.seed}
    return {"rows": metrics, "resources": resources, "conditions": conditions}
