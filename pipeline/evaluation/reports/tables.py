"""The long-form comparison tables (one line per row x metric: paper, ours with its 95 %
interval, the verdict against the floors, ours − paper), Fig 10's q-sensitivity table, and
their markdown and CSV files."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.floors import FLOORS, floor_row_name, is_floor_row
from pipeline.evaluation.intervals import interval, paired_difference

NOT_REPRODUCED = "not reproduced yet"
FLOOR_NOTE = ("Floor rows (no training): `floor-fill-box` paints the whole box with the target "
              "label, `floor-mean-mask` draws the class's mean training mask in it; a trained row "
              "has learned something about object shape only where it scores above both.")
TABLE_COLUMNS = ["row", "metric", "paper", "ours", "ci_low", "ci_high", "seeds", "vs_floor",
                 "difference"]


def score_matrices(scores: pd.DataFrame, metric: str) -> dict:
    """row -> (seeds, boxes) array of one metric from reports/scores.csv; the boxes (columns) are
    in the same image order for every row of a dataset, so rows can be paired."""
    matrices = {}
    for row, frame in scores.groupby("row", sort=False):
        table = frame.pivot(index="seed", columns="image", values=metric)
        matrices[row] = table.reindex(sorted(table.columns), axis=1).to_numpy()
    return matrices


def row_estimates(scores: pd.DataFrame, metric_names=("tiou", "hamm")) -> dict:
    """(row, metric) -> Estimate (mean and 95 % bootstrap interval over seeds and boxes)."""
    estimates = {}
    for metric in metric_names:
        for row, matrix in score_matrices(scores, metric).items():
            estimates[row, metric] = interval(matrix)
    return estimates


def box_convention_note(metrics: dict, convention: str) -> str:
    """The tables' sentence on which part of a test box tIOU and hamm score
    (pipeline.data.boxes.scored_box), with every floor's tIOU under both conventions."""
    part = ("the whole test box" if convention == "whole" else "the test box without its last "
            "row and column, as the authors' test code slices it")
    floors = [f"{row} {values['tiou_whole_box']:.4f} / {values['tiou_authors_box']:.4f}"
              for row, values in metrics.items()
              if is_floor_row(row) and "tiou_whole_box" in values]
    return (f"tIOU and hamm score {part} (box_convention `{convention}` of the profile)"
            + (f"; the floors' tIOU whole box / authors' box: {', '.join(floors)}."
               if floors else "."))


def floor_rows(dataset: str) -> list:
    return [floor_row_name(floor, dataset) for floor in FLOORS]


def versus_floor(scores: pd.DataFrame, row: str, metric: str, dataset: str) -> str:
    """Where a trained row stands against the stronger floor of its dataset, from the paired
    difference's 95 % interval: above / below / not distinguishable."""
    matrices = score_matrices(scores[scores["dataset"] == dataset], metric)
    if row not in matrices:
        return ""
    floors_here = [name for name in floor_rows(dataset) if name in matrices]
    if not floors_here:
        return ""
    strongest = max(floors_here, key=lambda name: matrices[name].mean())
    difference = paired_difference(matrices[row], matrices[strongest])
    if difference.low > 0:
        return "above floor"
    if difference.high < 0:
        return "below floor"
    return "not distinguishable"


def table_line(row, metric, paper_value, value, estimate, standing: str, seeds) -> dict:
    """One table line: paper, ours with its interval (estimate or None), seeds, where it stands
    against the floor, ours − paper (None when either is missing)."""
    return {"row": row, "metric": metric, "paper": paper_value, "ours": value,
            "ci_low": estimate.low if estimate else None,
            "ci_high": estimate.high if estimate else None,
            "seeds": None if seeds is None else str(seeds), "vs_floor": standing,
            "difference": None if value is None or paper_value is None
            else value - paper_value}


def comparison_table(metrics: dict, paper: dict, metric_names, scores: pd.DataFrame | None = None,
                     datasets=()) -> pd.DataFrame:
    """One line per (row, metric): paper value, ours with its 95 % interval and seed count, where
    it stands against the floor, ours − paper; then the floor rows of `datasets` (no paper value).
    A metric the run does not have (FID without the Inception weights, GPU memory on a CPU run)
    shows as missing, followed by what was measured instead under its own name (never compared
    with the paper)."""
    estimates = row_estimates(scores) if scores is not None else {}
    dataset_of = ({row: d for row, d in zip(scores["row"], scores["dataset"])}
                  if scores is not None else {})
    lines = []

    def line(row, metric, paper_value, value, seeds=None):
        estimate = estimates.get((row, metric))
        standing = ""
        if scores is not None and metric in ("tiou", "hamm") and not is_floor_row(row) \
                and row in dataset_of:
            standing = versus_floor(scores, row, metric, dataset_of[row])
        lines.append(table_line(row, metric, paper_value, value, estimate, standing, seeds))

    for row, paper_values in paper.items():
        ours = metrics.get(row, {})
        for metric in metric_names:
            line(row, metric, paper_values.get(metric), ours.get(metric), ours.get("seeds"))
            if ours.get(metric) is None:  # what was measured instead, never compared
                family = metric.split("_")[0] + "_"
                for name in sorted(k for k in ours if k.startswith(family)):
                    line(row, name, None, ours[name], ours.get("seeds"))
    for dataset in datasets:
        for row in floor_rows(dataset):
            if row in metrics:
                for metric in metric_names:
                    if metric in metrics[row]:
                        line(row, metric, None, metrics[row][metric])
    return pd.DataFrame(lines, columns=TABLE_COLUMNS)


def not_reproduced_table(paper: dict, metric_names, floors: pd.DataFrame | None = None
                         ) -> pd.DataFrame:
    """Paper numbers of a table this pipeline does not reproduce yet: ours says so. `floors`
    (lines of comparison_table) are appended: they need no model."""
    lines = [{"row": row, "metric": metric, "paper": values[metric], "ours": NOT_REPRODUCED}
             for row, values in paper.items() for metric in metric_names]
    frame = pd.DataFrame(lines, columns=TABLE_COLUMNS)
    if floors is not None and len(floors):
        frame = pd.concat([frame, floors], ignore_index=True)
    return frame


def q_sweep_rows(params) -> list:
    """Fig 10's q-sweep rows of `params`: the MExGAN rows (loss mex) whose q comes from the
    params' q_sweep section (q_from `q_sweep.<name>`), in params order, whatever their names."""
    sources = {f"q_sweep.{name}" for name in params.q_sweep}
    return [name for name, row in params.mex_rows.items()
            if row.loss == "mex" and row.q_from in sources]


def q_sensitivity(metrics: dict, sweep_rows, main_row: str | None) -> pd.DataFrame:
    """Fig 10: tIOU / hamm of the MExGAN q-sweep rows (`sweep_rows`, see q_sweep_rows) against
    q. The Table 1 row `main_row` (MExGAN on the sweep's dataset; None: none) is the point at
    its own q when no sweep row has that q (the sweep need not train a second, identical q = 4
    model)."""
    sweep_rows = set(sweep_rows)
    sweep = {row: values for row, values in metrics.items() if row in sweep_rows}
    if sweep and main_row in metrics and \
            metrics[main_row]["q"] not in {v["q"] for v in sweep.values()}:
        sweep[main_row] = metrics[main_row]
    lines = [{"row": row, "q": values["q"], "tiou": values["tiou"], "hamm": values["hamm"]}
             for row, values in sweep.items()]
    return pd.DataFrame(lines, columns=["row", "q", "tiou", "hamm"]).sort_values(
        "q", kind="stable")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table; missing values are an em dash, floats have 4 decimals."""
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    for record in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in record) + " |")
    return "\n".join(lines) + "\n"


def _markdown(frame: pd.DataFrame, title: str, note: str) -> str:
    return f"# {title}\n\n{note}\n\n" + markdown_table(frame)


def write_table(frame: pd.DataFrame, stem: str, title: str, note: str) -> None:
    frame.to_csv(stem + ".csv", index=False, float_format="%.6g")
    with open(stem + ".md", "w") as f:
        f.write(_markdown(frame, title, note))
