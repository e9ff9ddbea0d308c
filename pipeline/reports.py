"""Tables (paper / ours / difference), the q-sensitivity plot, the qualitative grids, the
training curves and reports/README.md, the page that puts them together."""
from __future__ import annotations

import glob
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

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
    "mexgan-cityscapes": {"tiou": 0.7493, "hamm": 0.7677, "mem_gpu_avg_gb": 4.43},
    "amexgan-cityscapes": {"tiou": 0.7652, "hamm": 0.7734, "mem_gpu_avg_gb": 4.54},
}
# Tables 2 (TwoSM on Cityscapes) and 3 (GL on CMP Facade) need models this pipeline does not
# have yet: the report shows the paper's numbers and says so.
PAPER_TABLE2 = {
    "TwoSM": {"tiou": 0.7064, "hamm": 0.7443},
    "TwoSM+Full": {"tiou": 0.8285, "hamm": 0.8427},
    "TwoSM+Full+MEx": {"tiou": 0.8242, "hamm": 0.8395},
    "TwoSM+Full+A-MEx": {"tiou": 0.8243, "hamm": 0.8387},
}
PAPER_TABLE3 = {
    "GL": {"ssim": 0.3827, "l1": 21.59, "fid": 63.14},
    "GL+A-MEx": {"ssim": 0.3912, "l1": 20.22, "fid": 54.84},
}
NOT_REPRODUCED = "not reproduced yet"
Q_SWEEP_PREFIX = "mexgan-q"


def comparison_table(metrics: dict, paper: dict, metric_names) -> pd.DataFrame:
    """One line per (row, metric): paper value, ours, ours − paper. A metric the run does not
    have (FID without the Inception weights, GPU memory on a CPU run) shows as missing, followed
    by what was measured instead under its own name (never compared with the paper)."""
    lines = []
    for row, paper_values in paper.items():
        ours = metrics.get(row, {})
        for metric in metric_names:
            paper_value, value = paper_values.get(metric), ours.get(metric)
            lines.append({"row": row, "metric": metric, "paper": paper_value, "ours": value,
                          "difference": None if value is None else value - paper_value})
            if value is None:  # what was measured instead, under its own name, never compared
                family = metric.split("_")[0] + "_"
                for name in sorted(k for k in ours if k.startswith(family)):
                    lines.append({"row": row, "metric": name, "paper": None,
                                  "ours": ours[name], "difference": None})
    return pd.DataFrame(lines, columns=["row", "metric", "paper", "ours", "difference"])


def not_reproduced_table(paper: dict, metric_names) -> pd.DataFrame:
    """Paper numbers of a table this pipeline does not reproduce yet: ours says so."""
    lines = [{"row": row, "metric": metric, "paper": values[metric], "ours": NOT_REPRODUCED,
              "difference": None} for row, values in paper.items() for metric in metric_names]
    return pd.DataFrame(lines, columns=["row", "metric", "paper", "ours", "difference"])


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


def q_sensitivity(metrics: dict) -> pd.DataFrame:
    """Fig 10: tIOU / hamm of the MExGAN q-sweep rows (mexgan-q<q>-<dataset>) against q."""
    lines = [{"row": row, "q": values["q"], "tiou": values["tiou"], "hamm": values["hamm"]}
             for row, values in metrics.items() if row.startswith(Q_SWEEP_PREFIX)]
    return pd.DataFrame(lines, columns=["row", "q", "tiou", "hamm"]).sort_values("q")


def plot_q_sensitivity(frame: pd.DataFrame, path: str, subtitle: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(frame["q"], frame["tiou"], "o-", label="tIOU")
    ax.plot(frame["q"], frame["hamm"], "s-", label="hamm")
    ax.set_xlabel("q (MEx expansions; q+1 discriminators)")
    ax.set_ylabel("score")
    ax.set_xticks(list(frame["q"]))
    ax.set_title(f"MExGAN q-sensitivity (Fig 10)\n{subtitle}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
    fig.savefig(path)
    plt.close(fig)


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
    fig.savefig(path)
    plt.close(fig)


def render_readme(*, conditions: list, tables: list, q_sweep: pd.DataFrame | None,
                  q_plot: str | None, grids: list, curves: list, warnings: list) -> str:
    """reports/README.md. conditions: (what, this run, paper) triples; tables: (title, note,
    frame); grids / curves: (caption, relative image path); warnings: lines shown first, bold."""
    out = ["# MExGAN reproduction — results", "",
           "Generated by the `report` stage (`python -m stages.report`) from "
           "`reports/metrics.json`, `reports/resources.json`, `reports/run_conditions.json`, "
           "`params.yaml` and the dvclive logs in `reports/train/`. Do not edit by hand: "
           "`dvc repro` rewrites it.", ""]
    out += [f"**{line}**" + "  " for line in warnings]
    if warnings:
        out.append("")
    out += ["## Run conditions", "", "| what | this run | paper |", "|---|---|---|"]
    out += [f"| {what} | {ours} | {paper} |" for what, ours, paper in conditions]
    out.append("")
    for title, note, frame in tables:
        out += [f"## {title}", "", note, "", markdown_table(frame)]
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


def ensure_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
