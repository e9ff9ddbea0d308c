"""Render the paper's tables (Table 3 from the inpainting evaluation), the q-sensitivity plot,
the picture grids, the training curves and reports/README.md (all of them on one page, with
the run's conditions).

  python -m stages.report
"""
import argparse
import json
import os

import pandas as pd

from pipeline.apps.huev_results import table1_with_huev
from pipeline.config.loading import load_params
from pipeline.evaluation.reports.conditions import (inpainting_conditions, run_conditions,
                                                    warnings_for)
from pipeline.evaluation.reports.page import render_readme, study_section
from pipeline.evaluation.reports.run_figures import (draw_grids, draw_metric_curves,
                                                     draw_q_sensitivity, draw_training_curves)
from pipeline.evaluation.reports.run_tables import (DIFFERENCES_NOTE, ours_note, run_differences,
                                                    run_tables, write_run_tables)
from stages.common import run


def read_json(path, stage="evaluate"):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (run the {stage} stage)")
    with open(path) as f:
        return json.load(f)


def read_csv(path, stage):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (run the {stage} stage)")
    return pd.read_csv(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--artifacts", default="artifacts")
    args = parser.parse_args()
    params = load_params(args.params)
    reports = args.reports
    metrics = read_json(os.path.join(reports, "metrics.json"))
    scores = read_csv(os.path.join(reports, "scores.csv"), "evaluate")
    conditions = read_json(os.path.join(reports, "run_conditions.json"))
    inpainting = read_json(os.path.join(reports, "inpainting_metrics.json"))
    inpainting_conditions_raw = read_json(os.path.join(reports,
                                                       "inpainting_run_conditions.json"))
    inpainting_scores = read_csv(os.path.join(reports, "inpainting_scores.csv"),
                                 "evaluate_inpainting")

    tables = run_tables(params, metrics, scores, inpainting, inpainting_scores,
                        inpainting_conditions_raw)
    huev = read_json(os.path.join(reports, "huev.json"), "huev")
    tables[0] = tables[0]._replace(frame=table1_with_huev(tables[0].frame, huev))
    write_run_tables(tables, ours_note(params, metrics, conditions), reports)
    differences = run_differences(params, scores, inpainting_scores, reports)

    sweep, q_plot = draw_q_sensitivity(params, metrics, conditions, reports)
    figures = os.path.join(reports, "figures")
    os.makedirs(os.path.join(figures, "curves"), exist_ok=True)
    grids = draw_grids(params, args.artifacts, figures)
    curves = draw_training_curves(params, reports, figures)
    metric_curves = draw_metric_curves(params, reports, scores, inpainting_scores)

    readme = render_readme(
        conditions=run_conditions(params, conditions, os.path.join(args.artifacts, "data"))
        + inpainting_conditions(params, inpainting_conditions_raw,
                                os.path.join(args.artifacts, "inpainting", "data")),
        tables=[(title, text, frame) for title, _, frame, text in tables],
        q_sweep=sweep if len(sweep) else None, q_plot=q_plot, grids=grids, curves=curves,
        warnings=warnings_for(conditions), differences=(DIFFERENCES_NOTE, differences),
        metric_curves=metric_curves, study=study_section(reports))
    with open(os.path.join(reports, "README.md"), "w") as f:
        f.write(readme)
    print(f"reports: README.md, table1-4, differences, q_sensitivity, {len(grids)} grids, "
          f"{len(curves)} training-curve figures")


if __name__ == "__main__":
    run(main)
