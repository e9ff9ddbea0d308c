"""The CPU studies' summaries (reports/study*/summary.md): the questions answered from the
paired differences and the learning curves, whatever the answer is."""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.floors import floor_row_name
from pipeline.evaluation.paper_tables import paper_table_markdown
from pipeline.evaluation.reports.curves import (FLAT_FRACTION, FLAT_TOLERANCE,
                                                first_step_above, flatness_cells,
                                                held_back_box_count)
from pipeline.evaluation.reports.paper_rows import variants
from pipeline.evaluation.reports.paper_values import study_paper_values
from pipeline.evaluation.reports.study_changes import changed_answers
from pipeline.evaluation.reports.study_questions import (ANSWER_WORDS, resolved_side, study_rows,
                                                         verdict)
from pipeline.evaluation.reports.study_references import label_path, reference_lines
from pipeline.evaluation.reports.tables import comparison_table


def _plain_answer(frame, steps, trained, fill) -> str:
    """One sentence answering the study's questions on tIOU, whatever the answer is. steps:
    (row a, row b, name of a, name of b) pairs; trained: the trained rows."""
    above = [row for row in trained if resolved_side(frame, row, fill) == 1]
    floor = ("no trained row beats the fill-box floor at this budget" if not above else
             f"{', '.join(above)} beat{'s' if len(above) == 1 else ''} the fill-box floor")
    parts = [f"{name_a} {ANSWER_WORDS[resolved_side(frame, a, b)]} {name_b}"
             for a, b, name_a, name_b in steps]
    return f"on tIOU, {', '.join(parts)}, and {floor}." if parts else f"on tIOU, {floor}."


def diagnostics_means(diagnostics: pd.DataFrame) -> pd.DataFrame:
    """Per row: the mean of every diagnostic column over test boxes and seeds."""
    columns = [c for c in diagnostics.columns if c not in ("row", "seed", "image", "label")]
    return diagnostics.groupby("row", sort=False)[columns].mean()


def per_class_table(scores: pd.DataFrame, rows, label_names, metric: str = "tiou") -> list:
    """Markdown lines: the mean `metric` per target class (columns) for each row (over boxes
    and seeds), with the number of test boxes of each class."""
    present = scores[scores["row"].isin(rows)]
    labels = sorted(present["label"].unique())
    counts = present[present["row"] == rows[0]].groupby("label").size()
    header = " | ".join(f"{label_names[int(l)]} ({int(counts.get(l, 0))})" for l in labels)
    lines = [f"| row | {header} |", "|---" * (len(labels) + 1) + "|"]
    for row in rows:
        means = present[present["row"] == row].groupby("label")[metric].mean()
        cells = " | ".join(f"{means[l]:.3f}" if l in means else "—" for l in labels)
        lines.append(f"| {row} | {cells} |")
    return lines


def _why_below(row: str, means: pd.DataFrame, twosm: bool = False) -> str:
    d = means.loc[row]
    where = "its context stream's argmax is" if twosm else "Ỹ's pixels decode to"
    return (f"{row}: its box is {d['target_share']:.0%} l_t, {d['kept_true_share']:.0%} the "
            f"true surroundings kept, {d['other_share']:.0%} other labels; "
            f"{d['largest_blob_share']:.0%} of its l_t pixels form one blob; outside the box "
            f"{d['outside_decode_accuracy']:.1%} of {where} the true label")


def _epochs(params) -> str:
    """'36 epochs', with the rows that train their own number of epochs."""
    own = {}
    for row in params.rows:
        if params.row_epochs(row) != params.train.epochs:
            own.setdefault(params.row_epochs(row), []).append(row)
    return f"{params.train.epochs} epochs" + "".join(
        f" ({', '.join(names)}: {epochs})" for epochs, names in sorted(own.items()))


def wall_time_text(wall_seconds: int, platform: str, resources: list = ()) -> str:
    """How long the study took, and where. `resources`: each training run's resources.json
    (train_seconds summed over its sittings, resumes); `wall_seconds` is study.sh's last sitting
    only, so a study stopped and resumed also says what its runs trained in all."""
    resumes = sum(r.get("resumes", 0) for r in resources)
    if not resumes:
        return f"Wall time {wall_seconds // 60} min ({platform})"
    trained = sum(r.get("train_seconds", 0.0) for r in resources)
    return (f"Wall time of the last sitting {wall_seconds // 60} min ({platform}); stopped and "
            f"resumed, the {len(resources)} training runs trained {trained / 60:.0f} min in all "
            f"over their sittings ({resumes} resume{'s' if resumes != 1 else ''})")


def _study_settings(params, dataset: str, vgg: str) -> str:
    """The study's training settings, as the summary's first paragraph states them."""
    if params.twosm_rows:
        t = params.twosm
        return (f"twosm.build `{t.build}`: context loss over the {t.context_loss}, D on the "
                f"{t.discriminator} stream{' (gated by the enlarged box)' if t.mask_gate else ''}"
                f", labels by {t.labels}, encoder skips {'on' if t.encoder_skips else 'off'}, "
                f"{t.norm} norm, {t.background_boxes:g} background boxes; λ_gan = "
                f"{t.lambda_gan:g}, λ_mask = {t.lambda_mask:g}, λ_context = "
                f"{t.lambda_context:g}, local crops {t.crop_size} px, batch {t.batch_size}; "
                f"MEx / A-MEx on the context stream, λ4 = {params.loss.lambda_mex:g}")
    profile = params.profiles[params.profile]
    return (f"λ2 = {profile.lambda_feat:g}, λ3 = {profile.lambda_perc:g} (L_perc {vgg}), L_B on "
            f"{'Ỹ' if profile.basic_loss_on == 'raw' else 'Ŷ'}, "
            f"{'q+1' if profile.discriminators == 'q_plus_one' else 'q'} expansion "
            f"discriminators")


def study_summary(*, metrics: dict, differences: pd.DataFrame, eval_curves: dict,
                  held_back: dict, params, wall_seconds: int, platform: str,
                  folder: str = "study", scores: pd.DataFrame | None = None,
                  diagnostics: pd.DataFrame | None = None, label_names=(),
                  params_file: str = "params_study.yaml",
                  reference: dict | None = None, previous: tuple = (),
                  resources: tuple = ()) -> str:
    """The study section of the report: the questions answered from the paired differences
    (95 % intervals) and the learning curves, whatever the answer is; whether each curve is flat
    (late_gain); with `diagnostics` (per box: pipeline.evaluation.diagnostics) and `scores`, what the rows
    draw in the box and their tIOU per class. The questions are those of the study's rows
    (study_rows: Table 1's or Table 2's). eval_curves: row -> seed -> {"tiou": (steps,
    values), ...}; held_back: metric -> {floor: v} on the curves' boxes; folder: where this
    study's files are, relative to the report; reference: another study on the same boxes
    (reference_lines); previous: earlier runs of this study ({"name", "differences",
    "metrics"} each), whose answers are set beside these, one table per run
    (study_changes.changed_answers); resources: the training runs' resources.json
    (wall_time_text)."""
    dataset = next(iter(params.datasets))
    size = params.datasets[dataset]
    rows = study_rows(params, dataset)
    # a sitting that trains some of the study's rows asks only its own rows' questions (the
    # others are answered beside the reference, reference_lines)
    ran = set(params.rows)
    steps = [step for step in rows.steps if step[0] in ran and step[1] in ran]
    trained = [row for row in rows.trained if row in ran]
    varied = [(variant, row, what) for variant, row, what in variants(params, dataset)
              if variant in ran and row in ran]   # e.g. TwoSM+Full at batch 1 beside batch 8
    variant_rows = [variant for variant, _, _ in varied]
    fill, mean_mask = (floor_row_name(floor, dataset) for floor in ("fill-box", "mean-mask"))
    vgg = ("dropped without VGG19 weights" if params.loss.without_vgg_weights == "drop"
           else "random stand-in without VGG19 weights")
    twosm = bool(params.twosm_rows)
    title = (f"## CPU study of Table 2, twosm build `{params.twosm.build}`" if twosm
             else f"## CPU study, `{params.profile}` profile")
    if params.data.source_of(dataset) == "real":   # the title tells it from the synthetic one
        title += f" on real {dataset} label maps"
        held_out = (f", sequences {', '.join(params.data.val_sequences)} held out whole as the "
                    f"test split" if params.data.val_sequences else "")
        data = (f"real {dataset} ({params.data.raw_dir}{held_out}, box rule "
                f"{params.data.box_rule}) at {size.width}x{size.height} ")
    else:
        data = (f"synthetic {dataset} at {size.width}x{size.height}, {size.synthetic_train} train "
                f"/ {size.synthetic_test} test images ")
    out = [title, "",
           f"`make study` (`{params_file}`, profile `{params.profile}`: "
           f"{_study_settings(params, dataset, vgg)}): {data}"
           f"({metrics.get(fill, {}).get('test_boxes', '?')} test boxes), rows "
           f"{', '.join(params.rows)}, seeds {list(params.seeds)}, {_epochs(params)}, "
           f"ngf/ndf {params.model.ngf}/{params.model.ndf}, q = {params.q}, "
           f"α = β = {params.alpha}. {wall_time_text(wall_seconds, platform, resources)}. "
           "Intervals: 95 % bootstrap over test boxes and seeds; the full tables are in "
           f"[{folder}/{rows.table}.md]({folder}/{rows.table}.md) and "
           f"[{folder}/differences.md]({folder}/differences.md).",
           "", f"**In short:** {_plain_answer(differences, steps, trained, fill)}", "",
           "| question | answer (tIOU) | answer (hamm) |", "|---|---|---|"]
    questions = [(f"Does {name_a} beat {name_b}?", a, b) for a, b, name_a, name_b in steps]
    questions += [(f"Does {variant} ({what}) beat {row}?", variant, row)
                  for variant, row, what in varied]
    questions += [(f"Does {row} beat the {name} floor?", row, floor)
                  for row in trained + variant_rows
                  for name, floor in (("fill-box", fill), ("mean-mask", mean_mask))]
    for question, a, b in questions:
        out.append(f"| {question} | {verdict(differences, a, b, 'tiou')} | "
                   f"{verdict(differences, a, b, 'hamm')} |")
    for earlier in previous:
        lines, changed = changed_answers(questions, differences, earlier["differences"])
        out += ["", f"Beside {earlier['name']}: the same questions, each answered by its own "
                f"run's paired 95 % intervals; {len(changed)} of {len(questions)} answers "
                "changed." + (f" Changed: {'; '.join(changed)}" if changed else ""), "", *lines,
                "", "| row | tIOU before | tIOU now |", "|---|---|---|"]
        out += [f"| {row} | {earlier['metrics'][row]['tiou']:.4f} | "
                f"{metrics[row]['tiou']:.4f} |"
                for row in [fill, mean_mask, *trained, *variant_rows] if row in metrics
                and row in earlier["metrics"]]
    if scores is not None and len(scores):
        table = comparison_table(metrics, study_paper_values(rows.trained), ["tiou", "hamm"],
                                 scores, [dataset])
        out += ["", f"{'Table 2' if twosm else 'Table 1'} in the paper's layout (paper: real "
                "Cityscapes at 256x128, 200 epochs):", "", paper_table_markdown(table).rstrip()]
    curve_boxes = held_back_box_count(params.train.eval_boxes,
                                      metrics.get(fill, {}).get("test_boxes"))
    out += ["", f"Flat: the seed-mean held-back tIOU gains less than {FLAT_TOLERANCE} over the "
            f"last {FLAT_FRACTION:.0%} of the steps.", "",
            "| row | tIOU | hamm | tIOU gained over the last 20 % of steps (seed mean) | flat | "
            f"first step above the fill-box floor on the held-back {curve_boxes} boxes (seed "
            "mean) |", "|---|---|---|---|---|---|"]
    for row in [fill, mean_mask, *rows.trained, *variant_rows]:
        values = metrics.get(row)
        if values is None:
            continue
        crossing, gain, flat = "", "", ""
        if row in eval_curves:
            parts = []
            for metric in ("tiou", "hamm"):
                curves = {s: c[metric] for s, c in eval_curves[row].items() if metric in c}
                floor = held_back.get(metric, {}).get(fill)
                if curves and floor is not None:
                    step = first_step_above(curves, floor)
                    last = max(int(c[0][-1]) for c in curves.values())
                    parts.append(f"{metric}: {step}" if step is not None
                                 else f"{metric}: never within {last} steps")
                if curves and metric == "tiou":
                    gain, flat = flatness_cells(curves)
            crossing = "; ".join(parts)
        out.append(f"| {row} | {values['tiou']:.4f} | {values['hamm']:.4f} | {gain} | {flat} | "
                   f"{crossing} |")
    if diagnostics is not None and len(diagnostics):
        means = diagnostics_means(diagnostics)
        context = "context_tiou" in means.columns
        fused = not twosm and params.profiles[params.profile].basic_loss_on == "fused"
        out += ["", "What the rows draw in the box (means over test boxes and seeds; the "
                "fill-box floor is 100 % l_t): " + (
                    "the accuracy of the context stream's argmax outside the box, inside the "
                    "observation window, where the answer is in the input (no colour decode); "
                    if twosm else "decode accuracy of Ỹ outside the box, where the answer is in "
                    "the input; ") +
                "how the box's pixels split between the target label l_t, the true labels kept "
                "and other labels; the share of l_t pixels in the largest blob" + (
                    "; the tIOU of the context stream's argmax alone, beside the painted labels "
                    "the table scores" if context else "") + "." + (
                    " Under this profile L_B scores the fused Ŷ, which equals the input outside "
                    "the box: nothing trains Ỹ there, so its outside-box decode accuracy says "
                    "nothing about colour precision." if fused else ""), "",
                "| row | outside-box " + ("context accuracy" if twosm else "decode accuracy") +
                " | box: l_t | box: true label kept | box: other labels | largest l_t blob |"
                + (" context-argmax tIOU |" if context else ""),
                "|---|---|---|---|---|---|" + ("---|" if context else "")]
        for row in means.index:
            d = means.loc[row]
            out.append(f"| {row} | {d['outside_decode_accuracy']:.4f} | "
                       f"{d['target_share']:.3f} | {d['kept_true_share']:.3f} | "
                       f"{d['other_share']:.3f} | {d['largest_blob_share']:.3f} |" +
                       (f" {d['context_tiou']:.4f} |" if context else ""))
        below = [row for row in means.index
                 if resolved_side(differences, row, fill) == -1
                 or resolved_side(differences, row, mean_mask) == -1]
        if below:
            out += ["", "Why rows stay below a floor:", ""]
            out += [f"- {_why_below(row, means, twosm)}." for row in below]
    if scores is not None and len(label_names):
        out += ["", "tIOU per target class (test boxes of the class in brackets):", ""]
        out += per_class_table(scores, [r for r in (fill, mean_mask, *rows.trained, *variant_rows)
                                        if r in set(scores["row"])], label_names)
    if reference is not None and scores is not None:
        same_path = label_path(reference["params"]) == label_path(params)
        out += reference_lines(
            scores, reference, rows, dataset,
            "another sitting of this study (the same params and code; its rows and seeds "
            "differ): its rows and this one's are subtracted below where the study asks." if
            same_path else
            "the colour rows read labels back from Ỹ's colours, TwoSM predicts them; both "
            "are scored on the same boxes, each against the fill-box floor, which is the same "
            "in both studies (the mean-mask floor is not: it is the class's mean training "
            "mask, and the TwoSM rows' training boxes go down to 0.01 of the image). The "
            "paper does not compare the two label paths, and neither does this table: no row "
            "of one study is subtracted from a row of the other." if twosm else "", params)
    out += ["", f"![study learning curves]({folder}/figures/metric_curves_{dataset}.png)", ""]
    return "\n".join(out) + "\n"
