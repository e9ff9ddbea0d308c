"""The Table 3 (inpainting) study's summary (reports/study_gl/summary.md): Table 3 with
intervals, its paired questions on SSIM and L1, the learning curves' flatness and earlier runs'
answers beside these."""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.floors import is_floor_row
from pipeline.evaluation.paper_tables import paper_table_markdown
from pipeline.evaluation.reports.curves import FLAT_FRACTION, FLAT_TOLERANCE, flatness_cells
from pipeline.evaluation.reports.inpainting_tables import (INPAINTING_DIRECTION,
                                                           inpainting_differences,
                                                           inpainting_steps,
                                                           inpainting_table)
from pipeline.evaluation.reports.paper_values import TABLE3_READINGS, table3_paper, table3_readings
from pipeline.evaluation.reports.study_changes import changed_answers
from pipeline.evaluation.reports.study_questions import ANSWER_WORDS, resolved_side, verdict
from pipeline.evaluation.reports.study_summary import wall_time_text


def inpainting_study_summary(*, metrics: dict, scores: pd.DataFrame, eval_curves: dict, params,
                             wall_seconds: int, platform: str, folder: str = "study_gl",
                             params_file: str = "params_study_gl.yaml",
                             resources: tuple = (), previous: tuple = ()) -> str:
    """The Table 3 study's answer: Table 3 with 95 % intervals over test images and seeds, the
    paired questions (inpainting_steps: each GL+A-MEx reading − GL, the authors' reading −
    ours, L_rec / image − L_rec / hole; each row − each floor) on SSIM and L1 over the hole,
    whether each row's held-back SSIM curve is flat, and the curves
    (figures/metric_curves_<dataset>.png in `folder`); resources: the training runs'
    resources.json (wall_time_text); previous: earlier runs of this study
    (study_references.read_inpainting_study), whose answers on SSIM and L1 are set beside
    these (study_changes.changed_answers), with each row's score and late SSIM gain then and
    now."""
    ip = params.inpainting
    dataset = ip.dataset
    rows = list(params.inpainting_rows)
    differences = inpainting_differences(scores, params.inpainting_rows, dataset)
    floors = sorted(r for r in metrics if is_floor_row(r, dataset))
    readings = {(row.loss, row.amex_reading) for row in params.inpainting_rows.values()
                if row.rec_divisor == "hole"}
    names = {name: TABLE3_READINGS.get((row.loss, row.amex_reading), (None, name))[1] + (
                 ", L_rec / image" if row.rec_divisor == "image"
                 and (row.loss, row.amex_reading) in readings else "")
             for name, row in params.inpainting_rows.items()}
    steps = inpainting_steps(params.inpainting_rows)
    joint = ip.epochs - ip.completion_epochs - ip.discriminator_epochs
    per_epoch = -(-ip.synthetic_train // ip.batch_size)

    def resolved(a, b):   # on SSIM, the study's headline metric
        return resolved_side(differences, a, b, "ssim", INPAINTING_DIRECTION["ssim"])

    above = [row for row in rows if floors and all(resolved(row, f) == 1 for f in floors)]
    short = ", ".join(f"{names[a]} {ANSWER_WORDS[resolved(a, b)]} {names[b]}"
                      for a, b in steps)
    floor_text = ("no trained row beats every floor" if not above else
                  f"{', '.join(above)} beat{'s' if len(above) == 1 else ''} every floor")
    out = ["## CPU study of Table 3: GL and GL+A-MEx, both readings", "",
           f"`make study PROFILE=gl` (`{params_file}`): synthetic {dataset} at "
           f"{ip.width}x{ip.height}, {ip.synthetic_train} train / {ip.synthetic_test} test "
           f"images, {ip.test_holes} seed-{params.evaluate.seed} holes per test image, rows "
           f"{', '.join(rows)}, seeds {list(params.seeds)}, {ip.epochs} epochs of batch "
           f"{ip.batch_size} ({ip.epochs * per_epoch} steps: GL's phases {ip.completion_epochs} "
           f"/ {ip.discriminator_epochs} / {joint} epochs), ngf/ndf {ip.ngf}/{ip.ndf}, q = "
           f"{ip.q}, α = β = {ip.alpha} px, λ_adv = {ip.lambda_adv:g}, λ4 = "
           f"{ip.lambda_amex:g}. {wall_time_text(wall_seconds, platform, resources)}. "
           "SSIM and L1 over the hole; intervals: 95 % bootstrap over test images (each the "
           "mean of its holes) and seeds.", "",
           f"**In short:** on SSIM, {short}, and {floor_text}.", "",
           table3_readings(params.inpainting_rows), "",
           "| question | answer (SSIM, higher is better) | answer (L1, lower is better) |",
           "|---|---|---|"]
    questions = [(f"Does {names[a]} beat {names[b]}?", a, b) for a, b in steps]
    questions += [(f"Does {row} beat {floor}?", row, floor) for row in rows for floor in floors]
    for question, a, b in questions:
        out.append(f"| {question} | "
                   + " | ".join(verdict(differences, a, b, m, INPAINTING_DIRECTION[m])
                                for m in ("ssim", "l1")) + " |")
    table = inpainting_table(metrics, scores, table3_paper(params.inpainting_rows), dataset)
    out += ["", "Table 3 (paper: real CMP Facade at 248x242):", "",
            paper_table_markdown(table), "",
            f"Flat: the seed-mean held-back SSIM (the first hole of the first "
            f"{params.train.eval_boxes} test images, once per epoch) gains less than "
            f"{FLAT_TOLERANCE} over the last {FLAT_FRACTION:.0%} of the steps.", "",
            "| row | SSIM | L1 | SSIM gained over the last 20 % of steps (seed mean) | flat |",
            "|---|---|---|---|---|"]
    for row in floors + rows:
        values = metrics.get(row)
        if values is None:
            continue
        curves = _ssim_curves(eval_curves, row)
        gain, flat = flatness_cells(curves) if curves else ("", "")
        out.append(f"| {row} | {values['ssim']:.4f} | {values['l1']:.4f} | {gain} | {flat} |")
    for earlier in previous:
        out += _inpainting_changes(questions, differences, earlier, metrics, eval_curves,
                                   floors + rows, dataset)
    out += ["", f"![study learning curves]({folder}/figures/metric_curves_{dataset}.png)", ""]
    return "\n".join(out) + "\n"


def _inpainting_changes(questions, differences: pd.DataFrame, earlier: dict, metrics: dict,
                        eval_curves: dict, rows: list, dataset: str) -> list:
    """Markdown lines: the Table 3 study's questions answered by an earlier run (its own
    paired intervals, from its scores) beside this run's, on SSIM and on L1, and each row's
    scores and late SSIM gain in both runs."""
    before = inpainting_differences(earlier["scores"], earlier["params"].inpainting_rows,
                                    dataset)
    tables, counts = [], []
    for metric in ("ssim", "l1"):
        lines, changed = changed_answers(questions, differences, before, metric,
                                         INPAINTING_DIRECTION[metric])
        counts.append(f"{len(changed)} of {len(questions)} on {metric.upper()}"
                      + (f" ({'; '.join(changed)})" if changed else ""))
        tables += ["", *lines]
    out = ["", f"Beside {earlier['name']} ({_epochs_text(earlier['params'])}): the same "
           "questions, each answered by its own run's paired 95 % intervals; answers changed: "
           f"{', '.join(counts)}.", *tables, "",
           "| row | SSIM before | SSIM now | L1 before | L1 now | SSIM late gain before | "
           "SSIM late gain now |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        then, now = earlier["metrics"].get(row), metrics.get(row)
        if then is None or now is None:
            continue
        gains = [flatness_cells(curves)[0] if curves else ""
                 for curves in (_ssim_curves(earlier["curves"], row),
                                _ssim_curves(eval_curves, row))]
        out.append(f"| {row} | {then['ssim']:.4f} | {now['ssim']:.4f} | {then['l1']:.4f} | "
                   f"{now['l1']:.4f} | {gains[0]} | {gains[1]} |")
    return out


def _ssim_curves(eval_curves: dict, row: str) -> dict:
    """seed -> (steps, values) of a row's held-back SSIM curve (read_eval_curves' layout);
    empty when the row has none."""
    return {seed: curves["ssim"] for seed, curves in eval_curves.get(row, {}).items()
            if "ssim" in curves}


def _epochs_text(params) -> str:
    ip = params.inpainting
    return f"{ip.epochs} epochs of batch {ip.batch_size}"
