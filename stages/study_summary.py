"""Write the CPU study's answer (reports/study*/summary.md) from a finished study run.

  python -m stages.study_summary --reports SCRATCH/reports --out reports/study --wall-seconds N
      [--models SCRATCH/artifacts/models --data SCRATCH/artifacts/data]
      [--params-file params_study_twosm.yaml --reference reports/study]

Called by `make study` (tools/study.sh) after `dvc repro` with params_study.yaml. With --models
and --data it also diagnoses every trained run on the test boxes (pipeline.evaluation.diagnostics) and
writes OUT/diagnostics.csv. With --reference (a finished study's folder on the same test boxes)
it sets this study's rows beside that study's (the TwoSM study beside the colour rows).
"""
import json
import os

import pandas as pd
import torch

from pipeline.config.loading import load_params, seed_dir
from pipeline.data.sets import get_spec
from pipeline.evaluation.diagnostics import diagnose_edits
from pipeline.evaluation.evaluation import row_resources, test_items
from pipeline.evaluation.reports.curves import (held_back_floors, held_back_inpainting_floors,
                                                read_eval_curves)
from pipeline.evaluation.reports.figures import plot_metric_curves
from pipeline.evaluation.reports.run_figures import draw_segmentation_curves
from pipeline.evaluation.reports.study_references import read_inpainting_study, read_study
from pipeline.evaluation.reports.inpainting_summary import inpainting_study_summary
from pipeline.evaluation.reports.study_summary import study_summary
from pipeline.kinds import kind_of, load_generator
from stages.common import ArgumentParser, run


def diagnose_runs(params, models: str, data: str) -> pd.DataFrame:
    """pipeline.evaluation.diagnostics of every trained run (row x seed) on the dataset's test boxes."""
    frames = []
    for row_name, row in params.rows.items():
        spec, split, items = test_items(row.dataset, os.path.join(data, row.dataset))
        for seed in params.seeds:
            generator = load_generator(seed_dir(models, row_name, seed), torch.device("cpu"),
                                       dataset=row.dataset)
            records = diagnose_edits(kind_of(params, row_name).edited_maps, generator, split,
                                     spec, items)
            frames.append(pd.DataFrame([{"row": row_name, "seed": seed,
                                         "image": split.names[index], **record}
                                        for (index, _), record in zip(items, records)]))
    return pd.concat(frames, ignore_index=True)


def where_it_ran(conditions: dict, reports: str, threads: int, source: str) -> str:
    """'<CPU model>, 1 thread per run, code <source>' from a run's conditions or resources."""
    machine = conditions.get("platform", {}).get("machine")
    resources = os.path.join(reports, "resources.json")
    if machine is None and os.path.exists(resources):
        with open(resources) as f:
            machine = json.load(f).get("machine")
    return (f"{(machine or {}).get('cpu_model', 'unknown CPU')}, {threads} thread"
            f"{'s' if threads > 1 else ''} per run, code {source or 'unknown'}")


def previous_names(args) -> list:
    """The summary's name of each --previous: its --previous-name, or None (the default)."""
    return args.previous_name + [None] * (len(args.previous) - len(args.previous_name))


def summarise_inpainting(params, args) -> None:
    """The Table 3 study's summary.md and its learning-curve figure, in --out."""
    with open(os.path.join(args.reports, "inpainting_metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(args.reports, "inpainting_run_conditions.json")) as f:
        conditions = json.load(f)
    scores = pd.read_csv(os.path.join(args.reports, "inpainting_scores.csv"))
    rows = list(params.inpainting_rows)
    curves = read_eval_curves(os.path.join(args.reports, "train"), rows, params.seeds)
    dataset = params.inpainting.dataset
    floors = {m: held_back_inpainting_floors(scores, params.train.eval_boxes, m)
              for m in ("ssim", "l1")}
    folder = args.folder or os.path.basename(os.path.normpath(args.out))
    os.makedirs(os.path.join(args.out, "figures"), exist_ok=True)
    plot_metric_curves(curves, floors,
                       os.path.join(args.out, "figures", f"metric_curves_{dataset}.png"),
                       f"Table 3 study: held-back SSIM / L1 over the hole ({dataset})")
    text = inpainting_study_summary(
        metrics=metrics, scores=scores, eval_curves=curves, params=params,
        wall_seconds=args.wall_seconds,
        platform=where_it_ran(conditions, args.reports, params.train.cpu_threads, args.source),
        folder=folder, params_file=args.params_file,
        resources=list(row_resources(rows, params.seeds,
                                     os.path.join(args.reports, "train")).values()),
        previous=[read_inpainting_study(earlier, name) for earlier, name in
                  zip(args.previous, previous_names(args))])
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", required=True, help="the study run's reports/ folder")
    parser.add_argument("--params", default="params.yaml", help="the study run's params")
    parser.add_argument("--out", required=True)
    parser.add_argument("--wall-seconds", type=int, required=True)
    parser.add_argument("--source", default="", help="the code the study ran (commit, note)")
    parser.add_argument("--folder", help="the study's folder relative to reports/, for links "
                        "(default: --out's name)")
    parser.add_argument("--models", help="the study run's artifacts/models (diagnostics)")
    parser.add_argument("--data", help="the study run's artifacts/data (diagnostics)")
    parser.add_argument("--diagnostics", help="an earlier diagnostics.csv of the same runs, "
                        "instead of --models / --data")
    parser.add_argument("--params-file", default="params_study.yaml",
                        help="the study's params file, as the summary names it")
    parser.add_argument("--reference", help="another study's folder (reports/study) scored on "
                        "the same test boxes, to set the rows beside its rows")
    parser.add_argument("--reference-name", help="how the summary names --reference when it is "
                        "not the committed reports/<folder> (e.g. that folder at an older "
                        "commit); default: reports/<folder>, linked to its summary")
    parser.add_argument("--previous", action="append", default=[],
                        help="an earlier run of this study (a study folder: differences.csv, "
                        "metrics.json; the Table 3 study's: inpainting_scores.csv, "
                        "inpainting_metrics.json) whose answers the summary sets beside these, "
                        "e.g. the committed one on the old synthetic world or at fewer epochs; "
                        "repeat for several runs")
    parser.add_argument("--previous-name", action="append", default=[],
                        help="how the summary names the --previous of the same position "
                        "(default: reports/<folder>)")
    args = parser.parse_args()
    if bool(args.models) != bool(args.data):
        parser.error("--models and --data go together")
    if len(args.previous_name) > len(args.previous):
        parser.error("--previous-name without its --previous")
    params = load_params(args.params)
    if params.inpainting_rows and not params.rows:   # the Table 3 study (profile gl)
        if args.reference:
            parser.error("--reference: the Table 3 study's summary sets no other study beside "
                         "its own")
        summarise_inpainting(params, args)
        return
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
    # the curve figure drawn again by this checkout's code, as the summary is: a pinned copy's
    # report stage may be older
    draw_segmentation_curves(params, args.out, scores, curves)
    where = where_it_ran(conditions, args.reports, params.train.cpu_threads, args.source)
    reference = read_study(args.reference, args.reference_name) if args.reference else None
    previous = [read_study(folder, name)
                for folder, name in zip(args.previous, previous_names(args))]
    diagnostics = None
    if args.diagnostics:
        diagnostics = pd.read_csv(args.diagnostics)
    elif args.models:
        diagnostics = diagnose_runs(params, args.models, args.data)
        diagnostics.to_csv(os.path.join(args.out, "diagnostics.csv"), index=False)
    text = study_summary(metrics=metrics, differences=differences, eval_curves=curves,
                         held_back=held_back, params=params, wall_seconds=args.wall_seconds,
                         platform=where,
                         folder=args.folder or os.path.basename(os.path.normpath(args.out)),
                         scores=scores, diagnostics=diagnostics,
                         label_names=get_spec(dataset).label_names,
                         params_file=args.params_file, reference=reference,
                         previous=previous,
                         resources=list(row_resources(params.rows, params.seeds,
                                                      os.path.join(args.reports, "train")).values()))
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    run(main)
