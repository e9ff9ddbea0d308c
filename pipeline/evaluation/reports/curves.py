"""Learning curves: the dvclive histories of the training runs, the floors on the slice the
curves are scored on, and what a curve says (when it crosses a floor, whether it is flat)."""
from __future__ import annotations

import glob
import os

import numpy as np
import pandas as pd

from pipeline.evaluation.floors import is_floor_row


def read_curves(live_dir: str) -> dict:
    """dvclive history of one training run: name -> (steps, values), from
    <live_dir>/plots/metrics/**/<name>.tsv (the files `dvc plots` shows)."""
    root = os.path.join(live_dir, "plots", "metrics")
    curves = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "*.tsv"), recursive=True)):
        frame = pd.read_csv(path, sep="\t")
        name = os.path.relpath(path, root)[:-len(".tsv")].replace(os.sep, "/")
        value_column = [c for c in frame.columns if c not in ("step", "timestamp")][-1]
        curves[name] = (frame["step"].to_numpy(), frame[value_column].to_numpy())
    return curves


def read_eval_curves(live_root: str, rows, seeds) -> dict:
    """row -> seed -> {metric: (steps, values)} of the dvclive eval/ curves of every training
    run under live_root (<row>/seed<k>); rows or seeds without curves are left out."""
    from pipeline.config.loading import seed_dir
    found = {}
    for row in rows:
        for seed in seeds:
            curves = {name[len("eval/"):]: curve for name, curve in
                      read_curves(seed_dir(live_root, row, seed)).items()
                      if name.startswith("eval/")}
            if curves:
                found.setdefault(row, {})[seed] = curves
    return found


def held_back_box_count(eval_boxes: int, test_boxes: int | None) -> int:
    """How many test boxes the learning curves score: train.eval_boxes, or every test box when
    there are fewer (None or 0: not known, eval_boxes)."""
    return min(eval_boxes, test_boxes or eval_boxes)


def held_back_floors(scores: pd.DataFrame, dataset: str, boxes: int, metric: str) -> dict:
    """floor row -> its mean on the first `boxes` test boxes (the slice the learning curves are
    scored on; scores.csv keeps the test-box order)."""
    return {row: float(frame[metric].iloc[:boxes].mean())
            for row, frame in scores[scores["dataset"] == dataset].groupby("row", sort=False)
            if is_floor_row(row)}


def held_back_inpainting_floors(scores: pd.DataFrame, images: int, metric: str) -> dict:
    """floor row -> its mean on the learning curves' slice: the first hole (repeat 0) of the
    first `images` test images."""
    first = sorted(scores["image"].unique())[:images]
    frame = scores[(scores["repeat"] == 0) & scores["image"].isin(first)]
    return {row: float(part[metric].mean()) for row, part in frame.groupby("row", sort=False)
            if is_floor_row(row)}


def first_step_above(curves: dict, floor: float):
    """The first logged step at which the seed-mean curve is above `floor`, or None.
    curves: seed -> (steps, values)."""
    runs = list(curves.values())
    length = min(len(steps) for steps, _ in runs)
    mean = np.mean([values[:length] for _, values in runs], axis=0)
    above = np.nonzero(mean > floor)[0]
    return int(runs[0][0][above[0]]) if len(above) else None


FLAT_FRACTION = 0.2    # the last 20 % of a run's steps ...
FLAT_TOLERANCE = 0.02  # ... may gain less than this on the seed-mean curve for it to be flat


def seed_mean_curve(curves: dict) -> tuple:
    """(steps, seed-mean values) over the logged points every seed has. curves: seed ->
    (steps, values)."""
    runs = list(curves.values())
    length = min(len(steps) for steps, _ in runs)
    return (np.asarray(runs[0][0][:length]),
            np.mean([np.asarray(values[:length]) for _, values in runs], axis=0))


MIN_CURVE_POINTS = 5   # fewer logged points than this: a curve too coarse to call flat


def curve_points(curves: dict) -> int:
    """How many logged points the seed-mean curve has (those every seed has)."""
    return len(seed_mean_curve(curves)[0])


def late_gain(curves: dict, fraction: float = FLAT_FRACTION) -> float:
    """What the seed-mean curve gained over the last `fraction` of its steps: its last value
    minus its value at the first logged step at or after (1 − fraction) × the last step."""
    steps, mean = seed_mean_curve(curves)
    start = int(np.nonzero(steps >= (1 - fraction) * steps[-1])[0][0])
    return float(mean[-1] - mean[start])


def flatness_cells(curves: dict) -> tuple:
    """(late gain, flat?) cells of a learning curve (seed -> (steps, values)): flat when the
    seed mean gains less than FLAT_TOLERANCE over the last FLAT_FRACTION of the steps; a curve
    of fewer than MIN_CURVE_POINTS logged points is too coarse to tell."""
    value, points = late_gain(curves), curve_points(curves)
    if points < MIN_CURVE_POINTS:
        return f"{value:+.4f}", f"**too few points ({points})** to tell"
    return f"{value:+.4f}", "yes" if value < FLAT_TOLERANCE else "**no**"
