"""Drawing primitives of the synthetic scenes: boolean masks on an H×W coordinate grid, and
the canvas that paints label, instance and photo maps back to front."""
from __future__ import annotations

import numpy as np


def coordinate_grid(height, width):
    return np.mgrid[0:height, 0:width].astype(np.float32)


def ellipse_mask(grid, cx, cy, rx, ry):
    yy, xx = grid
    return ((xx - cx) / max(rx, 0.5)) ** 2 + ((yy - cy) / max(ry, 0.5)) ** 2 <= 1.0


def rect_mask(grid, x1, y1, x2, y2):
    yy, xx = grid
    return (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2)


class Canvas:
    """Label + instance maps painted back to front, and per-pixel photo colours."""

    def __init__(self, height, width, rng):
        self.grid = coordinate_grid(height, width)
        self.labels = np.zeros((height, width), dtype=np.int64)
        self.instances = np.zeros((height, width), dtype=np.int64)
        self.photo = np.zeros((height, width, 3), dtype=np.float32)
        self.rng = rng
        self.counts = {}

    def paint(self, mask, label, colour, instance=False, texture=6.0):
        """Paint a region; instance=True gives it the id label*1000 + k (Cityscapes style)."""
        if not mask.any():
            return
        self.labels[mask] = label
        if instance:
            self.counts[label] = self.counts.get(label, 0) + 1
            self.instances[mask] = label * 1000 + self.counts[label]
        else:
            self.instances[mask] = label
        noise = self.rng.normal(0.0, texture, size=(int(mask.sum()), 3))
        self.photo[mask] = np.asarray(colour, dtype=np.float32) + noise

    def finish(self, shade=0.15):
        height = self.labels.shape[0]
        # Vertical light falloff, so the photo is not just palette colours.
        light = 1.0 + shade * (0.5 - np.arange(height, dtype=np.float32) / height)
        photo = np.clip(self.photo * light[:, None, None], 0, 255).astype(np.uint8)
        return self.labels, self.instances, photo


def jittered(rng, colour, amount=25):
    return np.clip(np.asarray(colour) + rng.integers(-amount, amount + 1, size=3), 0, 255)
