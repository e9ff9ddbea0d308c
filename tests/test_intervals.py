"""Bootstrap intervals against cases with a known answer."""
import numpy as np
import pytest

from pipeline.evaluation.intervals import Estimate, interval, paired_difference


def test_two_boxes_zero_and_one_give_the_whole_range():
    # Resampling 2 values: the mean is 0, 0.5 or 1 with p = 1/4, 1/2, 1/4, so the 2.5 % and
    # 97.5 % percentiles are 0 and 1.
    estimate = interval([0.0, 1.0])
    assert (estimate.mean, estimate.low, estimate.high) == (0.5, 0.0, 1.0)


def test_constant_scores_give_a_point_interval():
    assert interval(np.full((3, 5), 0.25)) == Estimate(0.25, 0.25, 0.25)


def test_normal_scores_match_the_normal_theory_half_width():
    rng = np.random.default_rng(1)
    scores = rng.normal(0.6, 0.2, 1000)
    estimate = interval(scores)
    half_width = 1.96 * scores.std(ddof=1) / np.sqrt(len(scores))
    assert estimate.low < scores.mean() < estimate.high
    assert (estimate.high - estimate.low) / 2 == pytest.approx(half_width, rel=0.12)


def test_seed_to_seed_variation_widens_the_interval():
    rng = np.random.default_rng(2)
    boxes = rng.normal(0.5, 0.1, 200)
    one_seed = interval(boxes)
    seeds = np.stack([boxes - 0.1, boxes, boxes + 0.1])
    three_seeds = interval(seeds)
    assert three_seeds.mean == pytest.approx(one_seed.mean)
    assert three_seeds.high - three_seeds.low > 3 * (one_seed.high - one_seed.low)


def test_paired_difference_resamples_the_same_boxes_for_both_rows():
    rng = np.random.default_rng(3)
    a = rng.uniform(0, 1, 50)
    # Per box B is A − 0.1: paired, every resample differs by exactly 0.1 (unpaired boxes
    # would give an interval about ±0.16 wide).
    estimate = paired_difference(a, a - 0.1)
    assert estimate.mean == pytest.approx(0.1)
    assert estimate.low == pytest.approx(0.1) and estimate.high == pytest.approx(0.1)
    assert estimate.excludes_zero
    same = paired_difference(a, a)
    assert (same.low, same.high) == (0.0, 0.0) and not same.excludes_zero


def test_paired_difference_with_noise_includes_zero_when_there_is_no_difference():
    rng = np.random.default_rng(4)
    a, b = rng.uniform(0, 1, (2, 3, 40))
    estimate = paired_difference(a, b)
    assert estimate.low < 0 < estimate.high and not estimate.excludes_zero


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="at least 2 boxes"):
        interval([0.5])
    with pytest.raises(ValueError, match="same boxes"):
        paired_difference(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        interval([0.1, float("nan")])
