"""Paired differences A − B on the same test boxes, with their 95 % bootstrap intervals: the
paper's comparisons and every trained row against each floor."""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.intervals import paired_difference
from pipeline.evaluation.reports.tables import floor_rows, score_matrices


def comparisons(rows, datasets) -> list:
    """The paper's comparisons as (A, B, dataset) pairs for paired differences: MExGAN −
    Pix2PixHD per dataset, A-MExGAN − MExGAN (Cityscapes), the Table 2 steps (+Full − TwoSM,
    +MEx / +A-MEx − +Full, +A-MEx − +MEx), and every trained row − each floor."""
    rows = set(rows)
    pairs = []
    for dataset in datasets:
        trained = [f"pix2pixhd-{dataset}", f"mexgan-{dataset}", f"amexgan-{dataset}"]
        two_stream = [f"twosm-{dataset}", f"twosm-full-{dataset}", f"twosm-full-mex-{dataset}",
                      f"twosm-full-amex-{dataset}"]
        wanted = [(trained[1], trained[0]), (trained[2], trained[1]),
                  (two_stream[1], two_stream[0]), (two_stream[2], two_stream[1]),
                  (two_stream[3], two_stream[1]), (two_stream[3], two_stream[2])]
        pairs += [(a, b, dataset) for a, b in wanted if {a, b} <= rows]
        for row in trained + two_stream:
            for floor in floor_rows(dataset):
                if {row, floor} <= rows:
                    pairs.append((row, floor, dataset))
    return pairs


def differences_table(scores: pd.DataFrame, datasets, metric_names=("tiou", "hamm")) -> pd.DataFrame:
    """Paired differences A − B on the same test boxes with their 95 % bootstrap interval;
    `excludes_0` says whether the interval excludes 0 (a difference this run can resolve)."""
    matrices = {metric: score_matrices(scores, metric) for metric in metric_names}
    return difference_lines(comparisons(set(scores["row"]), datasets), matrices, metric_names)


DIFFERENCE_COLUMNS = ["comparison", "dataset", "metric", "difference", "ci_low", "ci_high",
                      "excludes_0"]


def difference_lines(pairs, matrices: dict, metric_names) -> pd.DataFrame:
    """One line per (A, B, dataset) pair and metric: the paired difference A − B of the score
    matrices (metric -> row -> (seeds, items)) with its 95 % interval."""
    lines = []
    for a, b, dataset in pairs:
        for metric in metric_names:
            estimate = paired_difference(matrices[metric][a], matrices[metric][b])
            lines.append({"comparison": f"{a} − {b}", "dataset": dataset, "metric": metric,
                          "difference": estimate.mean, "ci_low": estimate.low,
                          "ci_high": estimate.high,
                          "excludes_0": "yes" if estimate.excludes_zero else "no"})
    return pd.DataFrame(lines, columns=DIFFERENCE_COLUMNS)
