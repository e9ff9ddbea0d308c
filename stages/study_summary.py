"""Write the CPU study's answer (reports/study/summary.md) from a finished study run.

  python -m stages.study_summary --reports SCRATCH/reports --out reports/study --wall-seconds N

Called by `make study` (tools/study.sh) after `dvc repro` with params_study.yaml.
"""
import json
import os

import pandas as pd

from pipeline.config import load_params
from pipeline.reports import held_back_floors, read_eval_curves, study_summary
from stages.common import ArgumentParser, run


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", required=True, help="the study run's reports/ folder")
    parser.add_argument("--params", default="params.yaml", help="the study run's params")
    parser.add_argument("--out", required=True)
    parser.add_argument("--wall-seconds", type=int, required=True)
    parser.add_argument("--source", default="", help="the code the study ran (commit, note)")
    args = parser.parse_args()
    params = load_params(args.params)
    with open(os.path.join(args.reports, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(args.reports, "run_conditions.json")) as f:
        conditions = json.load(f)
    differences = pd.read_csv(os.path.join(args.reports, "differences.csv"))
    scores = pd.read_csv(os.path.join(args.reports, "scores.csv"))
    dataset = next(iter(params.datasets))
    curves = read_eval_curves(os.path.join(args.reports, "train"), params.rows, params.seeds)
    held_back = {m: held_back_floors(scores, dataset, params.train.eval_boxes, m)
                 for m in ("tiou", "hamm")}
    machine = conditions.get("platform", {}).get("machine")
    resources = os.path.join(args.reports, "resources.json")
    if machine is None and os.path.exists(resources):
        with open(resources) as f:
            machine = json.load(f).get("machine")
    threads = params.train.cpu_threads
    where = (f"{(machine or {}).get('cpu_model', 'unknown CPU')}, {threads} thread"
             f"{'s' if threads > 1 else ''} per run, code {args.source or 'unknown'}")
    text = study_summary(metrics=metrics, differences=differences, eval_curves=curves,
                         held_back=held_back, params=params, wall_seconds=args.wall_seconds,
                         platform=where)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    run(main)
