"""The run's figures, as the report stage draws them under reports/: Fig 10's q-sensitivity
plot, the qualitative grids of the rows' test-box samples, every training run's curves and the
learning curves of the task metrics against the floors. Each returns what README.md shows."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from pipeline.config.loading import seed_dir
from pipeline.data.sets import STREET_DATASET, get_spec
from pipeline.evaluation.floors import floor_row_name
from pipeline.evaluation.reports.curves import (held_back_box_count, held_back_floors,
                                                held_back_inpainting_floors,
                                                read_curves, read_eval_curves)
from pipeline.evaluation.reports.figures import (inpainting_grid, plot_metric_curves,
                                                 plot_q_sensitivity, plot_training_curves,
                                                 qualitative_grid)
from pipeline.evaluation.reports.paper_values import TABLE3_READINGS
from pipeline.evaluation.reports.paper_rows import MEXGAN, PIX2PIXHD, TWOSM_FULL, row_of
from pipeline.evaluation.reports.tables import floor_rows, q_sensitivity, q_sweep_rows


def draw_q_sensitivity(params, metrics: dict, conditions: dict, reports: str) -> tuple:
    """reports/q_sensitivity.{csv,png} (a declared output: drawn, empty and saying so, without
    q-sweep rows); (the sweep's frame, the plot's path or None without rows)."""
    sweep = q_sensitivity(metrics, q_sweep_rows(params),
                          row_of(params, MEXGAN, STREET_DATASET))   # Fig 10 is on Cityscapes
    sweep.to_csv(os.path.join(reports, "q_sensitivity.csv"), index=False, float_format="%.6g")
    q_plot = "q_sensitivity.png"
    q_floors = {m: {r: metrics[r][m] for r in floor_rows(STREET_DATASET) if r in metrics}
                for m in ("tiou", "hamm")}
    plot_q_sensitivity(sweep, os.path.join(reports, q_plot),
                       f"{conditions['data_source']} Cityscapes, alpha=beta={params.alpha}",
                       q_floors)
    return sweep, (q_plot if len(sweep) else None)


def draw_grids(params, artifacts: str, figures: str) -> list:
    """figures/grid_<dataset>.png of every dataset with samples (Fig 5 layout), then the
    inpainting grid (Fig 7 layout); (caption, path relative to reports/) of each."""
    grids = []
    for dataset in params.datasets:
        shown = {}
        for role in (PIX2PIXHD, MEXGAN, TWOSM_FULL):
            row = row_of(params, role, dataset)
            path = os.path.join(artifacts, "eval", f"{row}.npz")
            if row is not None and os.path.exists(path):
                shown[role.title] = dict(np.load(path))
        if shown:
            qualitative_grid(shown, get_spec(dataset).label_names,
                             os.path.join(figures, f"grid_{dataset}.png"))
            grids.append((f"{dataset}: {' vs '.join(shown)}", f"figures/grid_{dataset}.png"))

    ip = params.inpainting
    shown = {}
    columns = [(row, TABLE3_READINGS[(spec.loss, spec.amex_reading)][1])
               for row, spec in params.inpainting_rows.items()]
    columns.append((floor_row_name("biharmonic", ip.dataset), "floor: biharmonic"))
    for row, title in columns:
        path = os.path.join(artifacts, "inpainting", "eval", f"{row}.npz")
        if os.path.exists(path):
            shown[row if title in shown else title] = dict(np.load(path))
    if shown:
        inpainting_grid(shown, os.path.join(figures, f"grid_{ip.dataset}.png"))
        grids.append((f"{ip.dataset} inpainting (Fig 7 layout): ground truth, masked input, "
                      f"{', '.join(shown)}", f"figures/grid_{ip.dataset}.png"))
    return grids


def draw_training_curves(params, reports: str, figures: str) -> list:
    """figures/curves/<run>.png of every training run's dvclive history (translators, then
    every row and seed); (caption, path relative to reports/) of each."""
    curves = []
    runs = [(f"translator-{d}", os.path.join(reports, "train", f"translator-{d}"))
            for d in params.datasets]
    runs += [(f"{row}-seed{seed}", seed_dir(os.path.join(reports, "train"), row, seed))
             for row in list(params.rows) + list(params.inpainting_rows)
             for seed in params.seeds]
    for name, live_dir in runs:
        history = {k: v for k, v in read_curves(live_dir).items() if not k.startswith("eval/")}
        if history:
            plot_training_curves(history, os.path.join(figures, "curves", f"{name}.png"), name)
            curves.append((name, f"figures/curves/{name}.png"))
    return curves


def draw_segmentation_curves(params, reports: str, scores: pd.DataFrame,
                             curves: dict | None = None) -> list:
    """figures/metric_curves_<dataset>.png in `reports`: tIOU / hamm of each segmentation row
    on the held-back slice during training (`curves` as read_eval_curves gives them, or else
    the dvclive curves under `reports`/train), the floors on the same slice; (dataset, path)
    of each."""
    if curves is None:
        curves = read_eval_curves(os.path.join(reports, "train"), params.rows, params.seeds)
    metric_curves = []
    for dataset in params.datasets:
        rows = {row: seeds for row, seeds in curves.items()
                if row in params.rows and params.rows[row].dataset == dataset}
        if rows:
            floors_here = {m: held_back_floors(scores, dataset, params.train.eval_boxes, m)
                           for m in ("tiou", "hamm")}
            image = f"figures/metric_curves_{dataset}.png"
            fill = scores[(scores["dataset"] == dataset)
                          & (scores["row"] == floor_row_name("fill-box", dataset))]
            boxes = held_back_box_count(params.train.eval_boxes, len(fill))
            os.makedirs(os.path.join(reports, "figures"), exist_ok=True)
            batches = {row: params.row_batch(row) for row in rows}
            plot_metric_curves(rows, floors_here, os.path.join(reports, image),
                               f"{dataset}: tIOU / hamm on the first {boxes} test boxes during "
                               "training", batch_sizes=batches)
            metric_curves.append((dataset, image))
    return metric_curves


def draw_metric_curves(params, reports: str, scores: pd.DataFrame,
                       inpainting_scores: pd.DataFrame) -> list:
    """figures/metric_curves_<dataset>.png: tIOU / hamm (SSIM / L1 for inpainting) on the
    held-back slice during training, the floors on the same slice; (caption, path) of each."""
    metric_curves = draw_segmentation_curves(params, reports, scores)
    ip = params.inpainting
    rows = read_eval_curves(os.path.join(reports, "train"), params.inpainting_rows,
                            params.seeds)
    if rows:
        floors_here = {m: held_back_inpainting_floors(inpainting_scores, params.train.eval_boxes,
                                                      m) for m in ("ssim", "l1")}
        image = f"figures/metric_curves_{ip.dataset}.png"
        plot_metric_curves(rows, floors_here, os.path.join(reports, image),
                           f"{ip.dataset}: SSIM / L1 over the hole, first hole of the first "
                           f"{params.train.eval_boxes} test images, during training")
        metric_curves.append((f"{ip.dataset} (inpainting)", image))
    return metric_curves
