"""95 % bootstrap intervals over test boxes and training seeds (scipy.stats.bootstrap).

A row's scores are a (seeds, boxes) array: one value per training seed and test box. The
interval resamples both: the seeds with replacement and, independently, the boxes with
replacement, and takes the mean of the selected cells (a two-level bootstrap; with one seed only
the boxes vary, so the interval says nothing about seed-to-seed variation). A paired difference
A − B resamples the same boxes for both rows (they are scored on identical test boxes) and the
seeds of each row independently.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 4999
SEED = 679


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _as_scores(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[None, :]
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (seeds, boxes) with at least 2 boxes, got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    return scores


def _bootstrap(statistic, samples, point: float) -> Estimate:
    """scipy's percentile bootstrap of `statistic` over independent index samples; a sample of
    length 1 (one seed) is held fixed instead of resampled."""
    varying = [i for i, sample in enumerate(samples) if len(sample) > 1]
    if not varying:
        return Estimate(point, point, point)

    def resampled(*drawn, axis=-1):
        full = [np.broadcast_to(np.asarray(sample), drawn[0].shape[:-1] + (len(sample),))
                for sample in samples]
        for position, values in zip(varying, drawn):
            full[position] = values
        return statistic(*full)

    result = stats.bootstrap([samples[i] for i in varying], resampled, vectorized=True,
                             paired=False, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                             method="percentile", random_state=np.random.default_rng(SEED))
    low, high = result.confidence_interval
    # A constant statistic (every resample equal) gives low == high == point up to rounding.
    return Estimate(point, float(min(low, point)), float(max(high, point)))


def _cell_mean(scores: np.ndarray, seed_index: np.ndarray, box_index: np.ndarray) -> np.ndarray:
    """mean of scores[seed_index[..., i], box_index[..., j]] over i, j, for each leading index."""
    selected = scores[seed_index[..., :, None], box_index[..., None, :]]
    return selected.mean(axis=(-2, -1))


def interval(scores) -> Estimate:
    """Mean and 95 % interval of a row's (seeds, boxes) scores (a 1-D array is one seed)."""
    scores = _as_scores(scores)
    seeds, boxes = np.arange(scores.shape[0]), np.arange(scores.shape[1])
    return _bootstrap(lambda s, b: _cell_mean(scores, s, b), [seeds, boxes], float(scores.mean()))


def paired_difference(scores_a, scores_b) -> Estimate:
    """Mean and 95 % interval of A − B, rows scored on the same boxes (the column order)."""
    scores_a, scores_b = _as_scores(scores_a), _as_scores(scores_b)
    if scores_a.shape[1] != scores_b.shape[1]:
        raise ValueError(f"paired rows need the same boxes: {scores_a.shape[1]} vs "
                         f"{scores_b.shape[1]}")
    seeds_a, seeds_b = np.arange(scores_a.shape[0]), np.arange(scores_b.shape[0])
    boxes = np.arange(scores_a.shape[1])

    def difference(sa, sb, b):
        return _cell_mean(scores_a, sa, b) - _cell_mean(scores_b, sb, b)

    return _bootstrap(difference, [seeds_a, seeds_b, boxes],
                      float(scores_a.mean() - scores_b.mean()))
