"""Tables (paper / ours / difference), the q-sensitivity plot, the qualitative grids, the
training curves and reports/README.md, the page that puts them together."""
from __future__ import annotations

import glob
import os
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from pipeline.evaluation.floors import FLOORS, floor_row_name, is_floor_row  # noqa: E402
from pipeline.evaluation.intervals import interval, paired_difference  # noqa: E402
from pipeline.evaluation.paper_tables import paper_table_markdown  # noqa: E402

# The paper's numbers (Tables 1 and 4). Keys are our row names; FID columns compare only when
# our run used the real Inception weights.
PAPER_TABLE1 = {
    "pix2pixhd-cityscapes": {"tiou": 0.7350, "hamm": 0.7483, "fid": 139.47},
    "mexgan-cityscapes": {"tiou": 0.7493, "hamm": 0.7677, "fid": 139.14},
    "pix2pixhd-nyu": {"tiou": 0.4222, "hamm": 0.3763, "fid": 138.16},
    "mexgan-nyu": {"tiou": 0.4851, "hamm": 0.4683, "fid": 137.44},
    "pix2pixhd-helen": {"tiou": 0.2806, "hamm": 0.4753, "fid": 64.91},
    "mexgan-helen": {"tiou": 0.3721, "hamm": 0.5278, "fid": 63.90},
}
PAPER_TABLE4 = {
    "mexgan-cityscapes": {"tiou": 0.7493, "hamm": 0.7677, "mem_gpu_step_peak_mean_gb": 4.43},
    "amexgan-cityscapes": {"tiou": 0.7652, "hamm": 0.7734, "mem_gpu_step_peak_mean_gb": 4.54},
}
# Table 2 (Cityscapes): TwoSM, TwoSM+Full, TwoSM+Full+MEx, TwoSM+Full+A-MEx, by our row names.
PAPER_TABLE2 = {
    "twosm-cityscapes": {"tiou": 0.7064, "hamm": 0.7443},
    "twosm-full-cityscapes": {"tiou": 0.8285, "hamm": 0.8427},
    "twosm-full-mex-cityscapes": {"tiou": 0.8242, "hamm": 0.8395},
    "twosm-full-amex-cityscapes": {"tiou": 0.8243, "hamm": 0.8387},
}
# Table 3 (CMP Facade inpainting): GL and GL+A-MEx, by our row names (inpainting_rows).
PAPER_TABLE3 = {
    "gl-facade": {"ssim": 0.3827, "l1": 21.59, "fid": 63.14},
    "gl-amex-facade": {"ssim": 0.3912, "l1": 20.22, "fid": 54.84},
}
# Table 3's rows by (loss, amex_reading): the paper row each reproduces, and how it is built.
TABLE3_READINGS = {
    ("gl", "ours"): ("gl-facade", "GL", "GL (global + local context discriminator)"),
    ("gl_amex", "ours"): ("gl-amex-facade", "GL+A-MEx",
                          "GL+A-MEx, our reading: GL's context discriminator plus a separate "
                          "LSGAN PatchGAN on the full-size (input, photo) × M^E_j, j = 0..q, "
                          "weighted α·λ4"),
    ("gl_amex", "authors"): ("gl-amex-facade", "GL+A-MEx (authors' D)",
                             "GL+A-MEx, the authors' code's reading: GL's local discriminator "
                             "replaced by one trunk shared over the full-size photo × M^E_j "
                             "(+ M^E_j), j = 0..q, its q+1 features and the global trunk's "
                             "into GL's one logit (BCE, weight α)"),
}


def table3_paper(rows: dict, paper: dict = PAPER_TABLE3) -> dict:
    """Table 3's paper values for the params' inpainting_rows (name -> InpaintingRow): the
    paper's rows, and every other row under the paper row it is a reading of (both GL+A-MEx
    readings are compared with the paper's GL+A-MEx)."""
    values = dict(paper)
    for name, row in rows.items():
        reading = TABLE3_READINGS.get((row.loss, row.amex_reading))
        if name not in values and reading and reading[0] in paper:
            values[name] = paper[reading[0]]
    return values


def table3_readings(rows: dict) -> str:
    """One sentence naming the reading of every Table 3 row (name -> InpaintingRow)."""
    parts = [f"`{name}`: {TABLE3_READINGS[(row.loss, row.amex_reading)][2]}" + (
                 "; L_rec's hole sum divided by the whole image's pixels (the authors' code)"
                 if getattr(row, "rec_divisor", "hole") == "image" else "")
             for name, row in rows.items() if (row.loss, row.amex_reading) in TABLE3_READINGS]
    return ("Rows: " + "; ".join(parts) + ".") if parts else ""
# Which way is better for the inpainting metrics (+1: higher, -1: lower).
INPAINTING_DIRECTION = {"ssim": 1, "l1": -1, "ssim_image": 1, "l1_image": -1}
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


def read_eval_curves(live_root: str, rows, seeds) -> dict:
    """row -> seed -> {metric: (steps, values)} of the dvclive eval/ curves of every training
    run under live_root (<row>/seed<k>); rows or seeds without curves are left out."""
    from pipeline.config import seed_dir
    found = {}
    for row in rows:
        for seed in seeds:
            curves = {name[len("eval/"):]: curve for name, curve in
                      read_curves(seed_dir(live_root, row, seed)).items()
                      if name.startswith("eval/")}
            if curves:
                found.setdefault(row, {})[seed] = curves
    return found


def held_back_floors(scores: pd.DataFrame, dataset: str, boxes: int, metric: str) -> dict:
    """floor row -> its mean on the first `boxes` test boxes (the slice the learning curves are
    scored on; scores.csv keeps the test-box order)."""
    return {row: float(frame[metric].iloc[:boxes].mean())
            for row, frame in scores[scores["dataset"] == dataset].groupby("row", sort=False)
            if is_floor_row(row)}


def plot_metric_curves(curves: dict, floors: dict, path: str, title: str) -> None:
    """Learning curves of the task metrics: per metric a panel with every row's eval curve
    (one thin line per seed, the seed mean bold) and the floors on the same boxes as dashed
    lines. curves: row -> seed -> {metric: (steps, values)}; floors: metric -> {floor: value}."""
    metrics = sorted({m for seeds in curves.values() for c in seeds.values() for m in c})
    fig, axes = plt.subplots(1, max(len(metrics), 1), squeeze=False,
                             figsize=(5 * max(len(metrics), 1), 3.6), dpi=100)
    for ax, metric in zip(axes.flat, metrics):
        for colour, (row, seeds) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4,
                                        curves.items()):
            runs = [c[metric] for c in seeds.values() if metric in c]
            for steps, values in runs:
                ax.plot(steps, values, color=colour, linewidth=0.6, alpha=0.5)
            length = min(len(steps) for steps, _ in runs)
            mean = np.mean([values[:length] for _, values in runs], axis=0)
            ax.plot(runs[0][0][:length], mean, color=colour, linewidth=1.8,
                    label=f"{row} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        for style, (floor, value) in zip(("--", ":"), floors.get(metric, {}).items()):
            ax.axhline(value, color="black", linestyle=style, linewidth=1, label=floor)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


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


#---------------------------------------------------------------------------------------------
# Table 3: inpainting (SSIM / L1 per test image, FID per run)


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


def inpainting_differences(scores: pd.DataFrame, rows, dataset: str,
                           metric_names=("ssim", "l1")) -> pd.DataFrame:
    """Paired differences on the same test images (per-image means over the same holes):
    GL+A-MEx − GL (the paper's comparison), every other GL+A-MEx row (`gl-amex-*`, another
    reading) − GL and − our GL+A-MEx, and every row − each floor; same columns as
    differences_table."""
    matrices = {m: inpainting_matrices(scores, m) for m in metric_names}
    present = set(scores["row"])
    trained = [r for r in rows if r in present]
    gl, ours = "gl-" + dataset, "gl-amex-" + dataset
    pairs = [(a, b) for a, b in ((ours, gl),) if {a, b} <= present]
    readings = [r for r in trained if r != ours and r.startswith("gl-amex-")
                and r.endswith("-" + dataset)]
    pairs += [(row, other) for row in readings for other in (gl, ours) if other in present]
    pairs += [(row, floor) for row in trained
              for floor in sorted(_inpainting_floors(matrices[metric_names[0]], dataset))]
    return difference_lines([(a, b, dataset) for a, b in pairs], matrices, metric_names)


def held_back_inpainting_floors(scores: pd.DataFrame, images: int, metric: str) -> dict:
    """floor row -> its mean on the learning curves' slice: the first hole (repeat 0) of the
    first `images` test images."""
    first = sorted(scores["image"].unique())[:images]
    frame = scores[(scores["repeat"] == 0) & scores["image"].isin(first)]
    return {row: float(part[metric].mean()) for row, part in frame.groupby("row", sort=False)
            if is_floor_row(row)}


def _hole_tile(image: np.ndarray, hole, scale: int) -> Image.Image:
    picture = Image.fromarray(np.ascontiguousarray(image)).resize(
        (image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    x1, y1, x2, y2 = (int(v) for v in hole)
    ImageDraw.Draw(picture).rectangle([x1 * scale - 1, y1 * scale - 1, x2 * scale, y2 * scale],
                                      outline=(255, 255, 0))
    return picture


def inpainting_grid(samples: dict, path: str, scale: int = 3) -> None:
    """Fig 7 layout: ground truth, the masked input (the hole pre-filled with the mean colour,
    as the network sees it), then each model's completion; the hole outlined in yellow.
    samples: column title -> npz contents of one row (truth, masked, completed, holes)."""
    first = next(iter(samples.values()))
    columns = ["ground truth", "masked input"] + list(samples)
    fig, axes = plt.subplots(len(first["holes"]), len(columns), squeeze=False,
                             figsize=(1.7 * len(columns), 1.7 * len(first["holes"]) + 0.3),
                             dpi=110)
    for r, hole in enumerate(first["holes"]):
        tiles = [first["truth"][r], first["masked"][r]] + [d["completed"][r]
                                                           for d in samples.values()]
        for c, tile in enumerate(tiles):
            axes[r][c].imshow(_hole_tile(tile, hole, scale))
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            if r == 0:
                axes[r][c].set_title(columns[c], fontsize=7)
        axes[r][0].set_ylabel(str(first["names"][r]), fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)


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


def q_sweep_rows(params) -> list:
    """Fig 10's q-sweep rows of `params`: the MExGAN rows (loss mex) whose q comes from the
    params' q_sweep section (q_from `q_sweep.<name>`), in params order, whatever their names."""
    sources = {f"q_sweep.{name}" for name in params.q_sweep}
    return [name for name, row in params.mex_rows.items()
            if row.loss == "mex" and row.q_from in sources]


def q_sensitivity(metrics: dict, sweep_rows, main_row: str = "mexgan-cityscapes"
                  ) -> pd.DataFrame:
    """Fig 10: tIOU / hamm of the MExGAN q-sweep rows (`sweep_rows`, see q_sweep_rows) against
    q. The Table 1 row `main_row` is the point at its own q when no sweep row has that q (the
    sweep need not train a second, identical q = 4 model)."""
    sweep_rows = set(sweep_rows)
    sweep = {row: values for row, values in metrics.items() if row in sweep_rows}
    if sweep and main_row in metrics and \
            metrics[main_row]["q"] not in {v["q"] for v in sweep.values()}:
        sweep[main_row] = metrics[main_row]
    lines = [{"row": row, "q": values["q"], "tiou": values["tiou"], "hamm": values["hamm"]}
             for row, values in sweep.items()]
    return pd.DataFrame(lines, columns=["row", "q", "tiou", "hamm"]).sort_values(
        "q", kind="stable")


def save_figure(fig, path: str) -> None:
    """PNG with no metadata (byte-stable across runs and matplotlib builds), then closed."""
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def plot_q_sensitivity(frame: pd.DataFrame, path: str, subtitle: str,
                       floors: dict | None = None) -> None:
    """Fig 10 with the floors (metric -> {floor row: value}) as horizontal lines."""
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    if not len(frame):
        ax.text(0.5, 0.5, "no q-sweep rows in this run", ha="center", va="center")
        ax.set_axis_off()
        save_figure(fig, path)
        return
    lines = {"tiou": ax.plot(frame["q"], frame["tiou"], "o-", label="tIOU")[0],
             "hamm": ax.plot(frame["q"], frame["hamm"], "s-", label="hamm")[0]}
    for metric, values in (floors or {}).items():
        for style, (floor, value) in zip(("--", ":"), values.items()):
            ax.axhline(value, color=lines[metric].get_color(), linestyle=style, linewidth=1,
                       label=f"{metric} {floor}")
    ax.set_xlabel("q (MEx expansions; q+1 discriminators)")
    ax.set_ylabel("score")
    ax.set_xticks(list(frame["q"]))
    ax.set_title(f"MExGAN q-sensitivity (Fig 10)\n{subtitle}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, path)


def _outlined(image: np.ndarray, box, grey_box: bool = False, scale: int = 4) -> Image.Image:
    image = image.copy()
    x1, y1, x2, y2 = (int(v) for v in box)
    if grey_box:
        image[y1:y2, x1:x2] = 128
    picture = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale),
                                            Image.NEAREST)
    ImageDraw.Draw(picture).rectangle([x1 * scale, y1 * scale, x2 * scale - 1, y2 * scale - 1],
                                      outline=(255, 255, 0))
    return picture


def qualitative_grid(samples: dict, label_names, path: str, scale: int = 4) -> None:
    """Fig 5 layout: GT map, GT photo, incomplete map (box greyed), then per model its
    manipulated map Ŷ and G_I(Ŷ). `samples`: model title -> npz contents of one row."""
    first = next(iter(samples.values()))
    columns = ["GT map", "GT photo", "incomplete"]
    for title in samples:
        columns += [f"{title} Ŷ", f"{title} G_I(Ŷ)"]
    rows = []
    for i, box in enumerate(first["boxes"]):
        tiles = [_outlined(first["truth"][i], box, scale=scale),
                 _outlined(first["photo"][i], box, scale=scale),
                 _outlined(first["truth"][i], box, grey_box=True, scale=scale)]
        for data in samples.values():
            tiles += [_outlined(data["fused"][i], box, scale=scale),
                      _outlined(data["translated"][i], box, scale=scale)]
        rows.append((label_names[int(first["labels"][i])], tiles))
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                             figsize=(1.9 * len(columns), 1.4 * len(rows) + 0.4), dpi=110)
    for r, (label, tiles) in enumerate(rows):
        for c, tile in enumerate(tiles):
            axes[r][c].imshow(tile)
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
            if r == 0:
                axes[r][c].set_title(columns[c], fontsize=7)
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def read_curves(live_dir: str) -> dict:
    """dvclive history of one training run: name -> (steps, values), from
    <live_dir>/plots/metrics/**/<name>.tsv (the files `dvc plots` shows)."""
    root = os.path.join(live_dir, "plots", "metrics")
    curves = {}
    for path in sorted(glob.glob(os.path.join(root, "**", "*.tsv"), recursive=True)):
        frame = pd.read_csv(path, sep="\t")
        name = os.path.relpath(path, root)[:-len(".tsv")].replace(os.sep, "/")
        value_column = [c for c in frame.columns if c not in ("step", "timestamp")][-1]
        curves[name] = (frame["step"].to_numpy(), frame[value_column].to_numpy())
    return curves


def plot_training_curves(curves: dict, path: str, title: str) -> None:
    """One small panel per logged quantity (losses of G and D, lr) against the dvclive step."""
    columns = min(4, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(2.6 * columns, 1.9 * rows + 0.5), dpi=100)
    for ax, (name, (steps, values)) in zip(axes.flat, curves.items()):
        ax.plot(steps, values, ".-", linewidth=1, markersize=3)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    fig.suptitle(f"{title} (x: dvclive step)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def render_readme(*, conditions: list, tables: list, q_sweep: pd.DataFrame | None,
                  q_plot: str | None, grids: list, curves: list, warnings: list,
                  differences: tuple = (), metric_curves: list = (), study: str = "") -> str:
    """reports/README.md. conditions: (what, this run, paper) triples; tables: (title, note,
    frame); differences: (note, frame) of the paired differences; grids / curves /
    metric_curves: (caption, relative image path); study: the CPU study section (markdown);
    warnings: lines shown first, bold."""
    out = ["# MExGAN reproduction — results", "",
           "Generated by the `report` stage (`python -m stages.report`) from "
           "`reports/metrics.json`, `reports/scores.csv`, `reports/run_conditions.json`, "
           "`params.yaml` and the dvclive logs in `reports/train/`. Do not edit by hand: "
           "`dvc repro` rewrites it.", ""]
    out += [f"**{line}**" + "  " for line in warnings]
    if warnings:
        out.append("")
    out += ["## Run conditions", "", "| what | this run | paper |", "|---|---|---|"]
    out += [f"| {what} | {ours} | {paper} |" for what, ours, paper in conditions]
    out.append("")
    for title, note, frame in tables:   # the paper's layout (the long form: the CSVs)
        out += [f"## {title}", "", note, "", paper_table_markdown(frame)]
    if differences:
        note, frame = differences
        out += ["## Paired differences (the paper's comparisons)", "", note, "",
                markdown_table(frame)]
    if metric_curves:
        out += ["## Learning curves of tIOU and hamm (SSIM and L1 for inpainting)", "",
                "Every training run scores its held-back slice (the first `train.eval_boxes` "
                "seed-679 test boxes; for inpainting the first hole of the first "
                "`train.eval_boxes` test images) every `train.eval_every` steps (dvclive "
                "`eval/tiou`, `eval/hamm`, `eval/ssim`, `eval/l1`); the dashed / dotted lines "
                "are the floors on the same boxes / holes.", ""]
        for caption, image in metric_curves:
            out += [f"### {caption}", "", f"![{caption}]({image})", ""]
    if study:
        out += [study.rstrip(), ""]
    out += ["## Fig 10 — q-sensitivity (MExGAN, Cityscapes)", ""]
    if q_plot and q_sweep is not None and len(q_sweep):
        out += [f"![q-sensitivity]({q_plot})", "", markdown_table(q_sweep)]
    else:
        out += ["No q-sweep rows (`mexgan-q<q>-cityscapes`) in this run.", ""]
    out += ["## Qualitative results (Fig 5 layout)", "",
            "Per test box (outlined in yellow): GT map, GT photo, the incomplete map (box greyed), "
            "then per model the manipulated map Ŷ and its translation G_I(Ŷ).", ""]
    for caption, image in grids:
        out += [f"### {caption}", "", f"![{caption}]({image})", ""]
    out += ["## Training curves", "",
            "Rendered from the dvclive TSVs (`reports/train/<row>/plots/metrics/train/*.tsv`). "
            "Interactive versions, and the same curves of two commits or experiments overlaid: "
            "`dvc plots show`, `dvc plots diff HEAD~1` (see the main README, "
            "\"Reports and CI\").", ""]
    for caption, image in curves:
        out += [f"### {caption}", "", f"![{caption}]({image})", ""]
    return "\n".join(out).rstrip() + "\n"


#---------------------------------------------------------------------------------------------
# The CPU study's answer


def first_step_above(curves: dict, floor: float):
    """The first logged step at which the seed-mean curve is above `floor`, or None.
    curves: seed -> (steps, values)."""
    runs = list(curves.values())
    length = min(len(steps) for steps, _ in runs)
    mean = np.mean([values[:length] for _, values in runs], axis=0)
    above = np.nonzero(mean > floor)[0]
    return int(runs[0][0][above[0]]) if len(above) else None


def _verdict(frame: pd.DataFrame, a: str, b: str, metric: str, direction: int = 1) -> str:
    """'yes' / 'no, it is worse' / 'cannot tell' for "does a beat b?" from the paired interval
    of a − b; direction -1 for a metric where lower is better (L1)."""
    line = frame[(frame["comparison"] == f"{a} − {b}") & (frame["metric"] == metric)]
    if not len(line):
        return f"{a} − {b}: not in this run"
    d = line.iloc[0]
    if d["excludes_0"] == "yes":
        word = "**yes**" if direction * d["difference"] > 0 else "**no, it is worse**"
    else:
        word = "**cannot tell** (the interval includes 0)"
    return (f"{word}: {metric} {a} − {b} = {d['difference']:+.4f} "
            f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")


def _resolved(frame: pd.DataFrame, a: str, b: str, metric: str = "tiou", direction: int = 1):
    """+1 / -1 when the paired interval of a − b excludes 0 on the better / worse side
    (direction -1: lower is better), 0 otherwise, None when the comparison is not in the
    frame."""
    line = frame[(frame["comparison"] == f"{a} − {b}") & (frame["metric"] == metric)]
    if not len(line):
        return None
    d = line.iloc[0]
    return 0 if d["excludes_0"] != "yes" else (1 if direction * d["difference"] > 0 else -1)


ANSWER_WORDS = {1: "beats", -1: "is worse than", 0: "cannot be told apart from",
                None: "was not run"}


def _plain_answer(frame, steps, trained, fill) -> str:
    """One sentence answering the study's questions on tIOU, whatever the answer is. steps:
    (row a, row b, name of a, name of b) pairs; trained: the trained rows."""
    above = [row for row in trained if _resolved(frame, row, fill) == 1]
    floor = ("no trained row beats the fill-box floor at this budget" if not above else
             f"{', '.join(above)} beat{'s' if len(above) == 1 else ''} the fill-box floor")
    parts = [f"{name_a} {ANSWER_WORDS[_resolved(frame, a, b)]} {name_b}"
             for a, b, name_a, name_b in steps]
    return f"on tIOU, {', '.join(parts)}, and {floor}."


def study_paper_values(rows) -> dict:
    """The paper's tIOU / hamm of a study's trained rows (Tables 1, 2 and 4; A-MExGAN's from
    Table 4); a row the paper has no value for gets none."""
    paper = {**PAPER_TABLE4, **PAPER_TABLE1, **PAPER_TABLE2}
    return {row: {m: v for m, v in paper.get(row, {}).items() if m in ("tiou", "hamm")}
            for row in rows}


class StudyRows(NamedTuple):
    """A study's row set: `steps`, the paper's comparisons as (row a, row b, name of a, name of
    b); `trained`, its trained rows in table order; `table`, the paper table they are from."""
    steps: list
    trained: list
    table: str


def study_rows(params, dataset: str) -> StudyRows:
    """The Table 2 rows (TwoSM, +Full, +Full+MEx, +Full+A-MEx) when the study has TwoSM rows,
    else the Table 1 rows (Pix2PixHD, MExGAN, A-MExGAN)."""
    if params.twosm_rows:
        local, full, full_mex, full_amex = (f"{p}-{dataset}" for p in (
            "twosm", "twosm-full", "twosm-full-mex", "twosm-full-amex"))
        steps = [(full, local, "TwoSM+Full", "TwoSM"),
                 (full_mex, full, "TwoSM+Full+MEx", "TwoSM+Full"),
                 (full_amex, full, "TwoSM+Full+A-MEx", "TwoSM+Full")]
        return StudyRows(steps, [local, full, full_mex, full_amex], "table2")
    pix, mex, amex = (f"{p}-{dataset}" for p in ("pix2pixhd", "mexgan", "amexgan"))
    return StudyRows([(mex, pix, "MExGAN", "Pix2PixHD"), (amex, mex, "A-MExGAN", "MExGAN")],
                     [pix, mex, amex], "table1")


FLAT_FRACTION = 0.2    # the last 20 % of a run's steps ...
FLAT_TOLERANCE = 0.02  # ... may gain less than this on the seed-mean curve for it to be flat


def seed_mean_curve(curves: dict) -> tuple:
    """(steps, seed-mean values) over the logged points every seed has. curves: seed ->
    (steps, values)."""
    runs = list(curves.values())
    length = min(len(steps) for steps, _ in runs)
    return (np.asarray(runs[0][0][:length]),
            np.mean([np.asarray(values[:length]) for _, values in runs], axis=0))


def late_gain(curves: dict, fraction: float = FLAT_FRACTION) -> float:
    """What the seed-mean curve gained over the last `fraction` of its steps: its last value
    minus its value at the first logged step at or after (1 − fraction) × the last step."""
    steps, mean = seed_mean_curve(curves)
    start = int(np.nonzero(steps >= (1 - fraction) * steps[-1])[0][0])
    return float(mean[-1] - mean[start])


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
    their_rows = study_rows(reference["params"], dataset).trained
    their_rows = [row for row in their_rows if row in set(theirs["row"])]
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
    link = (f" ([{reference['folder']}/summary.md]({reference['folder']}/summary.md))"
            if reference.get("link", True) else "")
    out = ["", f"Beside the rows of {reference['name']}{link}, on the same "
           f"{len(boxes(scores, fill))} test boxes and seeds: {label}", "",
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
    if params is not None and label_path(params) == label_path(reference["params"]):
        out += sitting_lines(scores, theirs, rows, mine, their_rows)
    return out


def sitting_lines(scores: pd.DataFrame, theirs: pd.DataFrame, rows: StudyRows, mine: list,
                  their_rows: list) -> list:
    """Markdown lines answering the study's questions (rows.steps) whose two rows were trained
    in different sittings of one study: same label path, same test boxes, same params but the
    rows and seeds. Each pair is scored on the seeds both rows have (tIOU and hamm, paired
    over boxes and those seeds, 95 % intervals)."""
    pairs = [(a, b, name_a, name_b) for a, b, name_a, name_b in rows.steps
             if (a in mine and b in their_rows) or (a in their_rows and b in mine)]
    if not pairs:
        return []
    both = pd.concat([scores, theirs], ignore_index=True)
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
                   f"{_verdict(frame, a, b, 'tiou')} | {_verdict(frame, a, b, 'hamm')} |")
    return out


def _epochs(params) -> str:
    """'36 epochs', with the rows that train their own number of epochs."""
    own = {}
    for row in params.rows:
        if params.row_epochs(row) != params.train.epochs:
            own.setdefault(params.row_epochs(row), []).append(row)
    return f"{params.train.epochs} epochs" + "".join(
        f" ({', '.join(names)}: {epochs})" for epochs, names in sorted(own.items()))


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
                  reference: dict | None = None) -> str:
    """The study section of the report: the questions answered from the paired differences
    (95 % intervals) and the learning curves, whatever the answer is; whether each curve is flat
    (late_gain); with `diagnostics` (per box: pipeline.evaluation.diagnostics) and `scores`, what the rows
    draw in the box and their tIOU per class. The questions are those of the study's rows
    (study_rows: Table 1's or Table 2's). eval_curves: row -> seed -> {"tiou": (steps,
    values), ...}; held_back: metric -> {floor: v} on the curves' boxes; folder: where this
    study's files are, relative to the report; reference: another study on the same boxes
    (reference_lines)."""
    dataset = next(iter(params.datasets))
    size = params.datasets[dataset]
    rows = study_rows(params, dataset)
    fill, mean_mask = (floor_row_name(floor, dataset) for floor in ("fill-box", "mean-mask"))
    vgg = ("dropped without VGG19 weights" if params.loss.without_vgg_weights == "drop"
           else "random stand-in without VGG19 weights")
    twosm = bool(params.twosm_rows)
    title = (f"## CPU study of Table 2, twosm build `{params.twosm.build}`" if twosm
             else f"## CPU study, `{params.profile}` profile")
    if params.data.source_of(dataset) == "real":
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
           f"α = β = {params.alpha}. Wall time {wall_seconds // 60} min ({platform}). "
           "Intervals: 95 % bootstrap over test boxes and seeds; the full tables are in "
           f"[{folder}/{rows.table}.md]({folder}/{rows.table}.md) and "
           f"[{folder}/differences.md]({folder}/differences.md).",
           "", f"**In short:** {_plain_answer(differences, rows.steps, rows.trained, fill)}", "",
           "| question | answer (tIOU) | answer (hamm) |", "|---|---|---|"]
    questions = [(f"Does {name_a} beat {name_b}?", a, b) for a, b, name_a, name_b in rows.steps]
    questions += [(f"Does {row} beat the {name} floor?", row, floor)
                  for row in rows.trained
                  for name, floor in (("fill-box", fill), ("mean-mask", mean_mask))]
    for question, a, b in questions:
        out.append(f"| {question} | {_verdict(differences, a, b, 'tiou')} | "
                   f"{_verdict(differences, a, b, 'hamm')} |")
    if scores is not None and len(scores):
        table = comparison_table(metrics, study_paper_values(rows.trained), ["tiou", "hamm"],
                                 scores, [dataset])
        out += ["", f"{'Table 2' if twosm else 'Table 1'} in the paper's layout (paper: real "
                "Cityscapes at 256x128, 200 epochs):", "", paper_table_markdown(table).rstrip()]
    out += ["", f"Flat: the seed-mean held-back tIOU gains less than {FLAT_TOLERANCE} over the "
            f"last {FLAT_FRACTION:.0%} of the steps.", "",
            "| row | tIOU | hamm | tIOU gained over the last 20 % of steps (seed mean) | flat | "
            f"first step above the fill-box floor on the held-back {params.train.eval_boxes} "
            "boxes (seed mean) |", "|---|---|---|---|---|---|"]
    for row in [fill, mean_mask, *rows.trained]:
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
                    value = late_gain(curves)
                    gain, flat = f"{value:+.4f}", "yes" if value < FLAT_TOLERANCE else "**no**"
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
                 if _resolved(differences, row, fill) == -1
                 or _resolved(differences, row, mean_mask) == -1]
        if below:
            out += ["", "Why rows stay below a floor:", ""]
            out += [f"- {_why_below(row, means, twosm)}." for row in below]
    if scores is not None and len(label_names):
        out += ["", "tIOU per target class (test boxes of the class in brackets):", ""]
        out += per_class_table(scores, [r for r in (fill, mean_mask, *rows.trained)
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


def inpainting_study_summary(*, metrics: dict, scores: pd.DataFrame, eval_curves: dict, params,
                             wall_seconds: int, platform: str, folder: str = "study_gl",
                             params_file: str = "params_study_gl.yaml") -> str:
    """The Table 3 study's answer: Table 3 with 95 % intervals over test images and seeds, the
    paired questions (each GL+A-MEx reading − GL, the authors' reading − ours, each row − each
    floor) on SSIM and L1 over the hole, whether each row's held-back SSIM curve is flat, and
    the curves (figures/metric_curves_<dataset>.png in `folder`)."""
    ip = params.inpainting
    dataset = ip.dataset
    rows = list(params.inpainting_rows)
    differences = inpainting_differences(scores, rows, dataset)
    floors = sorted(r for r in metrics if is_floor_row(r, dataset))
    names = {name: TABLE3_READINGS.get((row.loss, row.amex_reading), (None, name))[1]
             for name, row in params.inpainting_rows.items()}
    gl = next((n for n, r in params.inpainting_rows.items() if r.loss == "gl"), None)
    readings = [n for n, r in params.inpainting_rows.items() if r.loss == "gl_amex"]
    ours = [n for n in readings if params.inpainting_rows[n].amex_reading == "ours"]
    steps = [(row, gl) for row in readings if gl] + [
        (row, ours[0]) for row in readings if ours and row != ours[0]]
    joint = ip.epochs - ip.completion_epochs - ip.discriminator_epochs
    per_epoch = -(-ip.synthetic_train // ip.batch_size)

    def resolved(a, b):   # on SSIM, the study's headline metric
        return _resolved(differences, a, b, "ssim", INPAINTING_DIRECTION["ssim"])

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
           f"{ip.lambda_amex:g}. Wall time {wall_seconds // 60} min ({platform}). "
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
                   + " | ".join(_verdict(differences, a, b, m, INPAINTING_DIRECTION[m])
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
        gain, flat = "", ""
        curves = {s: c["ssim"] for s, c in eval_curves.get(row, {}).items() if "ssim" in c}
        if curves:
            value = late_gain(curves)
            gain, flat = f"{value:+.4f}", "yes" if value < FLAT_TOLERANCE else "**no**"
        out.append(f"| {row} | {values['ssim']:.4f} | {values['l1']:.4f} | {gain} | {flat} |")
    out += ["", f"![study learning curves]({folder}/figures/metric_curves_{dataset}.png)", ""]
    return "\n".join(out) + "\n"
