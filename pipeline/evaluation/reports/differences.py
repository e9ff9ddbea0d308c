"""Paired differences A − B on the same test boxes, with their 95 % bootstrap intervals: the
paper's comparisons and every trained row against each floor."""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.intervals import paired_difference
from pipeline.evaluation.reports.paper_rows import (COMPARISONS, TABLE1, TABLE2, row_of, rows_of,
                                                    variants)
from pipeline.evaluation.reports.tables import floor_rows, score_matrices


def comparisons(params, rows, datasets) -> list:
    """The paper's comparisons as (A, B, dataset) pairs for paired differences, between the
    rows of `params` that play the paper's rows (paper_rows.COMPARISONS: MExGAN − Pix2PixHD per
    dataset, A-MExGAN − MExGAN, the Table 2 steps), each variant (paper_rows.variants) − the row
    whose role it varies, then every trained row of the paper's tables and every variant − each
    floor; only pairs whose rows are both in `rows` (those scored)."""
    rows = set(rows)
    pairs = []
    for dataset in datasets:
        pairs += [(a, b, dataset) for a, b in ((row_of(params, a, dataset),
                                                row_of(params, b, dataset))
                                               for a, b in COMPARISONS) if {a, b} <= rows]
        varied = variants(params, dataset)
        pairs += [(variant, row, dataset) for variant, row, _ in varied
                  if {variant, row} <= rows]
        for row in rows_of(params, TABLE1 + TABLE2, dataset) + [v for v, _, _ in varied]:
            for floor in floor_rows(dataset):
                if {row, floor} <= rows:
                    pairs.append((row, floor, dataset))
    return pairs


def differences_table(params, scores: pd.DataFrame, datasets,
                      metric_names=("tiou", "hamm")) -> pd.DataFrame:
    """Paired differences A − B on the same test boxes with their 95 % bootstrap interval;
    `excludes_0` says whether the interval excludes 0 (a difference this run can resolve)."""
    matrices = {metric: score_matrices(scores, metric) for metric in metric_names}
    return difference_lines(comparisons(params, set(scores["row"]), datasets), matrices,
                            metric_names)


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
