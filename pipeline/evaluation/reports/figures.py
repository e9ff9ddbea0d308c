"""The report's figures: learning and training curves, Fig 10's q-sensitivity plot, and the
qualitative grids (Fig 5 layout; Fig 7 for inpainting). PNGs without metadata."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


def save_figure(fig, path: str) -> None:
    """PNG with no metadata (byte-stable across runs and matplotlib builds), then closed."""
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def plot_metric_curves(curves: dict, floors: dict, path: str, title: str,
                       batch_sizes: dict | None = None) -> None:
    """Learning curves of the task metrics: per metric a panel with every row's eval curve
    (one thin line per seed, the seed mean bold) and the floors on the same boxes as dashed
    lines. curves: row -> seed -> {metric: (steps, values)}; floors: metric -> {floor: value};
    batch_sizes: row -> its training batch; where the rows' batches differ the x axis counts
    training samples (step x batch), so a batch-8 run is not squeezed into an eighth."""
    batches = {row: (batch_sizes or {}).get(row, 1) for row in curves}
    by_samples = len(set(batches.values())) > 1
    scale = {row: batches[row] if by_samples else 1 for row in curves}
    metrics = sorted({m for seeds in curves.values() for c in seeds.values() for m in c})
    fig, axes = plt.subplots(1, max(len(metrics), 1), squeeze=False,
                             figsize=(5 * max(len(metrics), 1), 3.6), dpi=100)
    for ax, metric in zip(axes.flat, metrics):
        for colour, (row, seeds) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4,
                                        curves.items()):
            runs = [c[metric] for c in seeds.values() if metric in c]
            for steps, values in runs:
                ax.plot(np.asarray(steps) * scale[row], values, color=colour, linewidth=0.6,
                        alpha=0.5)
            length = min(len(steps) for steps, _ in runs)
            mean = np.mean([values[:length] for _, values in runs], axis=0)
            batch = f", batch {batches[row]}" if by_samples else ""
            ax.plot(np.asarray(runs[0][0][:length]) * scale[row], mean, color=colour,
                    linewidth=1.8,
                    label=f"{row} ({len(runs)} seed{'s' if len(runs) > 1 else ''}{batch})")
        for style, (floor, value) in zip(("--", ":"), floors.get(metric, {}).items()):
            ax.axhline(value, color="black", linestyle=style, linewidth=1, label=floor)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("training samples (step x batch)" if by_samples else "training step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


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
