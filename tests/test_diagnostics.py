"""pipeline.evaluation.diagnostics on hand-made 6x8 maps, values worked out by hand."""
import numpy as np
import pytest

from pipeline.evaluation.diagnostics import (box_label_split, largest_blob_share,
                                  outside_decode_accuracy)

TRUTH = np.zeros((6, 8), dtype=np.int64)
TRUTH[1:4, 2:6] = 3                       # the true object under the box
BOX = (2, 1, 6, 5)                        # 4 wide x 4 high = 16 px; rows 1..4, cols 2..5


def test_outside_decode_accuracy_counts_only_pixels_outside_the_box():
    predicted = TRUTH.copy()
    predicted[2, 3] = 9                   # inside the box: ignored
    predicted[0, 0] = 5                   # outside: 2 of the 48 - 16 = 32 outside pixels wrong
    predicted[5, 7] = 5
    assert outside_decode_accuracy(predicted, TRUTH, BOX) == pytest.approx(30 / 32)


def test_box_label_split_by_hand():
    predicted = TRUTH.copy()              # box: rows 1-3 are 3 (12 px), row 4 is 0 (4 px)
    predicted[1, 2:6] = 7                 # 4 px of the target label 7
    predicted[2, 2] = 1                   # 1 px of another label (true there: 3)
    split = box_label_split(predicted, TRUTH, BOX, 7)
    # target: 4; kept (pred == truth, not 7): rows 2-3 minus (2,2) = 7, plus row 4 = 4 -> 11;
    # other: 1
    assert split == pytest.approx({"target_share": 4 / 16, "kept_true_share": 11 / 16,
                                   "other_share": 1 / 16})
    assert sum(split.values()) == pytest.approx(1.0)


def test_box_label_split_when_the_target_is_the_true_label():
    # a pixel that is both l_t and true counts as target, not kept
    split = box_label_split(TRUTH, TRUTH, BOX, 3)
    assert split == pytest.approx({"target_share": 12 / 16, "kept_true_share": 4 / 16,
                                   "other_share": 0.0})


def test_largest_blob_share_8_connected():
    predicted = np.zeros((6, 8), dtype=np.int64)
    predicted[1, 2] = predicted[2, 3] = 4     # diagonal neighbours: one 8-connected part
    predicted[4, 5] = 4                       # a separate pixel
    predicted[0, 0] = 4                       # outside the box: not counted
    assert largest_blob_share(predicted, BOX, 4) == pytest.approx(2 / 3)
    assert largest_blob_share(predicted, BOX, 8) == 0.0
