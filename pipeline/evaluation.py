"""Evaluate trained rows on the fixed seed-679 test boxes: redraw each box (Ỹ = G(Su, B)),
fuse (Eq 5), read labels back by nearest palette colour, score tIOU / hamm inside the box,
translate Ŷ with the dataset's G_I and score FID against the test photos."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import torch
from tqdm import tqdm

from pipeline import trainer
from pipeline.config import Params
from pipeline.datasets import colour_to_labels, get_spec, read_split
from pipeline.inputs import edit_batch, from_unit_range, read_boxes, to_unit_range
from pipeline.metrics import FIDScorer, hamm, tiou
from pipeline.rows import SUMMARY_FILE, load_generator

log = logging.getLogger(__name__)


class DatasetEvaluation:
    """Test split, test boxes, G_I and the real-photo FID features of one dataset."""

    def __init__(self, dataset: str, data_dir: str, translator_dir: str, fid: FIDScorer,
                 device):
        self.spec = get_spec(dataset)
        self.split = read_split(os.path.join(data_dir, "test.h5"))
        boxes = read_boxes(os.path.join(data_dir, "test_boxes.csv"))
        index = {name: i for i, name in enumerate(self.split.names)}
        unknown = sorted(set(boxes) - set(index))
        if unknown:
            raise ValueError(f"{data_dir}/test_boxes.csv: image {unknown[0]} is not in test.h5")
        self.items = [(index[name], boxes[name][0]) for name in self.split.names if name in boxes]
        if len(self.items) < 2:
            raise ValueError(f"{data_dir}: {len(self.items)} test boxes; need at least 2")
        self.translator = load_generator(translator_dir, device)
        self.device = device
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


def evaluate(params: Params, row_names, *, data_root: str, model_root: str,
             samples_dir: str, progress: bool = True) -> dict:
    """Metrics of every row (means over the test boxes), training time and memory, and the run
    conditions (data source, device, which weights were used); example maps and
    photos of the first evaluate.grid_images test boxes go to samples_dir/<row>.npz."""
    trainer.make_deterministic(params.train.seed, params.train.cpu_threads)
    device = trainer.pick_device(params.train.device)
    fid = FIDScorer(params.evaluate.fid_dims, params.evaluate.inception_weights_path, device)
    os.makedirs(samples_dir, exist_ok=True)
    datasets, metrics, resources = {}, {}, {}
    for row_name in tqdm(row_names, desc="evaluate", disable=not progress):
        row = params.row(row_name)
        if row.dataset not in datasets:
            datasets[row.dataset] = DatasetEvaluation(
                row.dataset, os.path.join(data_root, row.dataset),
                os.path.join(model_root, f"translator-{row.dataset}"), fid, device)
        data = datasets[row.dataset]
        model_dir = os.path.join(model_root, row_name)
        generator = load_generator(model_dir, device)
        tious, hamms, fused, photos = data.run(generator)
        with open(os.path.join(model_dir, SUMMARY_FILE)) as f:
            summary = json.load(f)
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
            os.path.join(samples_dir, f"{row_name}.npz"), fused=fused[:count],
            translated=photos[:count], truth=data.spec.palette[data.split.labels[shown]],
            photo=data.split.photos[shown],
            boxes=np.array([edit.box for _, edit in data.items[:count]]),
            labels=np.array([edit.label for _, edit in data.items[:count]]))
    vgg_pretrained = {json.load(open(os.path.join(model_root, r, SUMMARY_FILE)))["vgg_source"]
                      for r in row_names}
    conditions = {"data_source": params.data.source, "device": str(device),
                  "fid_metric": fid.metric_name, "fid_source": fid.source,
                  "vgg_sources": sorted(vgg_pretrained), "test_box_seed": params.evaluate.seed}
    return {"rows": metrics, "resources": resources, "conditions": conditions}
