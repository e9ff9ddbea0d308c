"""A study's rows beside another study's on the same test boxes: each against the fill-box
floor, and, for another sitting of one study, the study's questions across the sittings."""
from __future__ import annotations

import json
import os

import pandas as pd

from pipeline.config.loading import load_params
from pipeline.evaluation.floors import floor_row_name
from pipeline.evaluation.reports.curves import read_eval_curves
from pipeline.evaluation.reports.differences import difference_lines
from pipeline.evaluation.reports.study_questions import StudyRows, joined, study_rows, verdict
from pipeline.evaluation.reports.tables import score_matrices


def read_study(folder: str, name: str | None = None) -> dict:
    """A finished study's folder (reports/study*) as the summary's `reference` and `previous`
    read it: name (default reports/<folder>), folder, link (whether the name is the committed
    folder, linked to its summary), scores, differences, metrics and params."""
    base = os.path.basename(os.path.normpath(folder))
    with open(os.path.join(folder, "metrics.json")) as f:
        metrics = json.load(f)
    return {"name": name or f"reports/{base}", "folder": base, "link": not name,
            "scores": pd.read_csv(os.path.join(folder, "scores.csv")),
            "differences": pd.read_csv(os.path.join(folder, "differences.csv")),
            "metrics": metrics, "params": load_params(os.path.join(folder, "params.yaml"))}


def read_inpainting_study(folder: str, name: str | None = None) -> dict:
    """A finished Table 3 study's folder (reports/study_gl) as its summary's `previous` reads
    it: name (default reports/<folder>), scores (inpainting_scores.csv), metrics, params and
    the held-back learning curves copied under its train/ (read_eval_curves)."""
    with open(os.path.join(folder, "inpainting_metrics.json")) as f:
        metrics = json.load(f)
    params = load_params(os.path.join(folder, "params.yaml"))
    return {"name": name or f"reports/{os.path.basename(os.path.normpath(folder))}",
            "scores": pd.read_csv(os.path.join(folder, "inpainting_scores.csv")),
            "metrics": metrics, "params": params,
            "curves": read_eval_curves(os.path.join(folder, "train"), params.inpainting_rows,
                                       params.seeds)}


def label_path(params) -> str:
    """How a study's rows get their labels, as the cross-study table names it."""
    return ("predicted by its streams (no colour decode)" if params.twosm_rows
            else "decoded from Ỹ's colours (nearest palette colour)")


def reference_lines(scores: pd.DataFrame, reference: dict, rows: StudyRows, dataset: str,
                    label: str, params=None) -> list:
    """Markdown lines setting this study's trained rows beside another study's on the same test
    boxes (reference: {"name", "folder", "scores": its scores.csv, "params": its params, "link":
    whether to link its summary, default yes}): each row's label path, its tIOU and its paired difference to the fill-box floor, which is the
    same in both studies. No row of one study is subtracted from a row of the other: the label
    paths differ and the paper does not compare the two (issue 34); the table says so."""
    fill = floor_row_name("fill-box", dataset)
    theirs = reference["scores"]
    their = study_rows(reference["params"], dataset)
    their_rows = [row for row in their.trained if row in set(theirs["row"])]
    boxes = lambda frame, row: set(frame.loc[frame["row"] == row, "image"])  # noqa: E731
    if not their_rows or boxes(theirs, fill) != boxes(scores, fill):
        return ["", f"{reference['name']}: not comparable (other test boxes)."]
    both = pd.concat([scores, theirs[theirs["row"].isin(their_rows)]], ignore_index=True)
    matrices = {metric: score_matrices(both, metric) for metric in ("tiou",)}
    mine = [row for row in rows.trained if row in set(scores["row"]) and row not in their_rows]
    frame = difference_lines([(row, fill, dataset) for row in their_rows + mine], matrices,
                             ("tiou",))
    paths = {row: label_path(reference["params"]) for row in their_rows}
    if params is not None:
        paths.update({row: label_path(params) for row in mine})
    same_path = params is not None and label_path(params) == label_path(reference["params"])
    link = (f" ([{reference['folder']}/summary.md]({reference['folder']}/summary.md))"
            if reference.get("link", True) else "")
    out = ["", f"Beside the rows of {reference['name']}{link}, on the same "
           f"{len(boxes(scores, fill))} test boxes and seeds: {label}", "",
           "| row | labels | tIOU | − fill-box floor |" if same_path else
           "| row | labels | tIOU | − fill-box floor (not a comparison between the studies: "
           "the label paths differ, and the paper does not compare them) |",
           "|---|---|---|---|"]
    for row in their_rows + mine:
        line = frame[frame["comparison"] == f"{row} − {fill}"]
        cell = ("" if not len(line) else
                f"{line.iloc[0]['difference']:+.4f} [{line.iloc[0]['ci_low']:+.4f}, "
                f"{line.iloc[0]['ci_high']:+.4f}]")
        out.append(f"| {row} | {paths.get(row, '')} | {matrices['tiou'][row].mean():.4f} | "
                   f"{cell} |")
    if same_path:
        out += sitting_lines(both, joined(rows, their), mine, their_rows)
    return out


def sitting_lines(both: pd.DataFrame, rows: StudyRows, mine: list, their_rows: list) -> list:
    """Markdown lines answering the study's questions (rows.steps) whose two rows were trained
    in different sittings of one study: same label path, same test boxes, same params but the
    rows and seeds. both: the two sittings' scores in one frame. Each pair is scored on the
    seeds both rows have (tIOU and hamm, paired over boxes and those seeds, 95 % intervals)."""
    pairs = [(a, b, name_a, name_b) for a, b, name_a, name_b in rows.steps
             if (a in mine and b in their_rows) or (a in their_rows and b in mine)]
    if not pairs:
        return []
    out = ["", "The study's questions whose rows were trained in different sittings (same "
           "params, test boxes and code; paired over the test boxes and the seeds both rows "
           "have):", "", "| question | seeds | answer (tIOU) | answer (hamm) |",
           "|---|---|---|---|"]
    for a, b, name_a, name_b in pairs:
        seeds = sorted(set(both.loc[both["row"] == a, "seed"])
                       & set(both.loc[both["row"] == b, "seed"]))
        pair = both[both["row"].isin((a, b)) & both["seed"].isin(seeds)]
        matrices = {metric: score_matrices(pair, metric) for metric in ("tiou", "hamm")}
        frame = difference_lines([(a, b, "")], matrices, ("tiou", "hamm"))
        out.append(f"| Does {name_a} beat {name_b}? | {', '.join(map(str, seeds))} | "
                   f"{verdict(frame, a, b, 'tiou')} | {verdict(frame, a, b, 'hamm')} |")
    return out
