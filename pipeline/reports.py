"""Tables (paper / ours / difference), the q-sensitivity plot and the qualitative grids."""
from __future__ import annotations

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


def _markdown(frame: pd.DataFrame, title: str, note: str) -> str:
    def cell(value):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "—"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = [f"# {title}", "", note, "", "| " + " | ".join(frame.columns) + " |",
             "|" + "---|" * len(frame.columns)]
    for record in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in record) + " |")
    return "\n".join(lines) + "\n"


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


def ensure_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
