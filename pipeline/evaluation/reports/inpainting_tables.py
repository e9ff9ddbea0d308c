"""Table 3 (inpainting): SSIM / L1 per test image, FID per run; the table against the paper
and the floors, and its paired differences."""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.floors import is_floor_row
from pipeline.evaluation.intervals import interval, paired_difference
from pipeline.evaluation.reports.differences import difference_lines
from pipeline.evaluation.reports.tables import TABLE_COLUMNS, table_line

# Which way is better for the inpainting metrics (+1: higher, -1: lower).
INPAINTING_DIRECTION = {"ssim": 1, "l1": -1, "ssim_image": 1, "l1_image": -1}


def inpainting_matrices(scores: pd.DataFrame, metric: str) -> dict:
    """row -> (seeds, test images) array of one metric from reports/inpainting_scores.csv, each
    cell the mean over that image's holes: the image is the unit of the interval (its 20 holes
    are not independent samples of the test population)."""
    matrices = {}
    for row, frame in scores.groupby("row", sort=False):
        table = frame.groupby(["seed", "image"])[metric].mean().unstack("image")
        matrices[row] = table.reindex(sorted(table.columns), axis=1).to_numpy()
    return matrices


def _inpainting_floors(matrices: dict, dataset: str) -> list:
    return [row for row in matrices if is_floor_row(row, dataset)]


def inpainting_versus_floor(matrices: dict, row: str, metric: str, dataset: str) -> str:
    """Where a row stands against the better floor (in the metric's direction), from the paired
    difference's 95 % interval: better / worse than floor, or not distinguishable."""
    floors_here = _inpainting_floors(matrices, dataset)
    if row not in matrices or not floors_here:
        return ""
    sign = INPAINTING_DIRECTION[metric]
    best = max(floors_here, key=lambda name: sign * matrices[name].mean())
    difference = paired_difference(matrices[row], matrices[best])
    if sign * difference.low > 0 and sign * difference.high > 0:
        return "better than floor"
    if sign * difference.low < 0 and sign * difference.high < 0:
        return "worse than floor"
    return "not distinguishable"


def inpainting_table(metrics: dict, scores: pd.DataFrame, paper: dict, dataset: str,
                     metric_names=("ssim", "l1", "fid")) -> pd.DataFrame:
    """Table 3: per row SSIM, L1 (over the hole), FID -- paper, ours with its 95 % interval over
    test images and seeds (SSIM / L1; FID is one number per run), where it stands against the
    better floor, ours − paper -- then the whole-image SSIM / L1 beside (no paper value), then
    the floor rows. A stand-in FID is listed under its own name, never compared."""
    matrices = {m: inpainting_matrices(scores, m) for m in INPAINTING_DIRECTION}
    lines = []

    def line(row, metric, paper_value, value, seeds=None):
        estimate = (interval(matrices[metric][row])
                    if metric in matrices and row in matrices[metric] else None)
        standing = ("" if is_floor_row(row) or metric not in matrices
                    else inpainting_versus_floor(matrices[metric], row, metric, dataset))
        lines.append(table_line(row, metric, paper_value, value, estimate, standing, seeds))

    rows = list(paper) + [r for r in metrics if r not in paper and not is_floor_row(r)]
    for row in rows:
        ours = metrics.get(row, {})
        for metric in metric_names:
            line(row, metric, paper.get(row, {}).get(metric), ours.get(metric), ours.get("seeds"))
            if ours and ours.get(metric) is None:
                for name in sorted(k for k in ours if k.startswith(metric + "_standin")):
                    line(row, name, None, ours[name], ours.get("seeds"))
        for metric in ("ssim_image", "l1_image"):
            if metric in ours:
                line(row, metric, None, ours[metric], ours.get("seeds"))
    for row in sorted(r for r in metrics if is_floor_row(r, dataset)):
        for metric in list(metric_names) + ["ssim_image", "l1_image"]:
            names = [metric] if metric in metrics[row] else sorted(
                k for k in metrics[row] if k.startswith(metric + "_standin"))
            for name in names:
                line(row, name, None, metrics[row][name])
    return pd.DataFrame(lines, columns=TABLE_COLUMNS)


def inpainting_steps(rows: dict) -> list:
    """Table 3's paired questions (a, b), a − b, between the rows of `rows` (name ->
    InpaintingRow), found by their params: each GL+A-MEx reading − GL (the paper's comparison),
    the authors' reading − our GL+A-MEx, each with the same L_rec divisor where a row has one,
    and each row whose L_rec divides by the image's pixels − its twin that divides by the
    hole's (issue 34's switch; the same loss and reading)."""
    def find(loss, reading, divisor):
        return next((name for name, row in rows.items()
                     if (row.loss, row.amex_reading, row.rec_divisor) == (loss, reading, divisor)),
                    None)

    steps = []
    for name, row in rows.items():
        if row.loss == "gl_amex":
            gl = find("gl", "ours", row.rec_divisor) or find("gl", "ours", "hole")
            steps += [(name, gl)] if gl else []
            if row.amex_reading != "ours":
                ours = (find("gl_amex", "ours", row.rec_divisor)
                        or find("gl_amex", "ours", "hole"))
                steps += [(name, ours)] if ours else []
        twin = find(row.loss, row.amex_reading, "hole")
        if row.rec_divisor == "image" and twin:
            steps.append((name, twin))
    return steps


def inpainting_differences(scores: pd.DataFrame, rows: dict, dataset: str,
                           metric_names=("ssim", "l1")) -> pd.DataFrame:
    """Paired differences on the same test images (per-image means over the same holes) of
    the questions of `rows` (name -> InpaintingRow; inpainting_steps) and of every row − each
    floor; same columns as differences_table."""
    matrices = {m: inpainting_matrices(scores, m) for m in metric_names}
    present = set(scores["row"])
    pairs = [(a, b) for a, b in inpainting_steps(rows) if {a, b} <= present]
    pairs += [(row, floor) for row in rows if row in present
              for floor in sorted(_inpainting_floors(matrices[metric_names[0]], dataset))]
    return difference_lines([(a, b, dataset) for a, b in pairs], matrices, metric_names)
