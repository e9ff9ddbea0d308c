"""The picture grid of the real-maps scoring (stages.real_maps): for a spread of boxes, the
map around the box with the box outlined, the ground truth, each floor and each row. Rendered
locally: pictures of Cityscapes maps are not committed (the dataset's terms)."""
from __future__ import annotations

import os

import numpy as np

from pipeline.data.sets import STREET_DATASET, get_spec

SHOWN = 8  # boxes per grid


def context_window(box, width: int, height: int) -> tuple:
    """The box and as much again around it (clamped to the map)."""
    x1, y1, x2, y2 = box
    pad_x, pad_y = max(4, (x2 - x1) // 2), max(4, (y2 - y1) // 2)
    return (max(0, x1 - pad_x), max(0, y1 - pad_y), min(width, x2 + pad_x),
            min(height, y2 + pad_y))


def grid(frames, boxes, maps: dict, folder: str, shown: int = SHOWN) -> str:
    """Write <folder>/grid.png: `shown` boxes spread over the list, one column per map kind."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    palette = get_spec(STREET_DATASET).palette
    picks = np.unique(np.linspace(0, len(boxes) - 1, min(shown, len(boxes))).astype(int))
    columns = ["ground truth", *maps]
    figure, axes = plt.subplots(len(picks), len(columns),
                                figsize=(2.2 * len(columns), 1.6 * len(picks)), squeeze=False)
    for row, pick in enumerate(picks):
        b = boxes[pick]
        height, width = frames.labels[b.frame].shape
        wx1, wy1, wx2, wy2 = context_window(b.box, width, height)
        for col, name in enumerate(columns):
            labels = frames.labels[b.frame] if name == "ground truth" else maps[name][pick]
            ax = axes[row, col]
            ax.imshow(palette[labels[wy1:wy2, wx1:wx2]], interpolation="nearest")
            x1, y1, x2, y2 = b.box
            ax.add_patch(Rectangle((x1 - wx1 - 0.5, y1 - wy1 - 0.5), x2 - x1, y2 - y1,
                                   fill=False, edgecolor="yellow", linewidth=1))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=8)
        axes[row, 0].set_ylabel(f"{frames.names[b.frame][-13:]}", fontsize=6)
    figure.tight_layout()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "grid.png")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
