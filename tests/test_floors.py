"""Floor rows against hand-computed values on tiny maps."""
import numpy as np

from pipeline.data.boxes import object_mask
from pipeline.evaluation.floors import (fill_box_prediction, floor_row_name, is_floor_row,
                                        mean_mask_prediction, mean_masks, ring_label)
from pipeline.data.inputs import EditBox
from pipeline.evaluation.metrics import hamm, tiou


def test_fill_box_scores_the_share_of_the_box_the_object_covers():
    truth = np.zeros((4, 6), dtype=int)
    truth[1:3, 1:4] = 5          # a 2x3 box, 5 of its 6 pixels are the object
    truth[2, 3] = 7
    box = (1, 1, 4, 3)
    predicted = fill_box_prediction(truth, box, 5)
    assert (predicted[1:3, 1:4] == 5).all() and (predicted[0] == 0).all()
    assert tiou(predicted, truth, box, 5) == 5 / 6
    assert hamm(predicted, truth, box) == 5 / 6


def test_object_mask_takes_the_largest_instance_of_the_label_in_the_box():
    labels = np.array([[5, 5, 5, 0]])
    instances = np.array([[5001, 5002, 5002, 0]])
    assert object_mask(labels, instances, (0, 0, 4, 1), 5).tolist() == [[False, True, True,
                                                                         False]]


def test_ring_label_is_the_most_frequent_label_around_the_box_clamped_at_the_border():
    incomplete = np.array([[1, 1, 2],
                           [3, 9, 2],
                           [3, 2, 2]])
    assert ring_label(incomplete, (1, 1, 2, 2)) == 2      # 2 x4, 1 x2, 3 x2
    assert ring_label(incomplete, (0, 0, 1, 1)) == 1      # ring (1, 3, 9): tie -> smallest
    assert ring_label(incomplete, (0, 0, 3, 3)) == 1      # no ring: the box's own label


def test_mean_mask_draws_the_class_prior_and_fills_the_rest_with_the_ring_label():
    # Two training boxes of label 5, both 4 wide x 2 high; the object is the left half in one,
    # the whole box in the other: the mean is 1 on the left half and 0.5 on the right half.
    labels = np.zeros((2, 4, 8), dtype=int)
    instances = np.zeros((2, 4, 8), dtype=int)
    labels[0, 1:3, 2:4], instances[0, 1:3, 2:4] = 5, 5001
    labels[1, 1:3, 2:6], instances[1, 1:3, 2:6] = 5, 5001
    boxes = {"a": [EditBox("a", 5, (2, 1, 6, 3))], "b": [EditBox("b", 5, (2, 1, 6, 3))]}
    masks = mean_masks(labels, instances, ["a", "b"], boxes)
    assert set(masks) == {5}
    assert masks[5][:, :12].min() > 0.99 and abs(masks[5][:, 20:].mean() - 0.5) < 1e-9
    # Test map: label 7 all around, box 8 wide x 2 high; 0.5 counts as inside (>= 0.5).
    truth = np.full((4, 10), 7)
    truth[1:3, 1:5] = 5
    box = (1, 1, 9, 3)
    predicted = mean_mask_prediction(truth, box, 5, masks)
    assert (predicted[1:3, 1:9] == 5).all()  # mean >= 0.5 everywhere: the whole box
    # With a third, empty-right-half box the right half drops below 0.5 -> ring label 7.
    labels3 = np.concatenate([labels, labels[:1]])
    instances3 = np.concatenate([instances, instances[:1]])
    boxes["c"] = [EditBox("c", 5, (2, 1, 6, 3))]
    masks = mean_masks(labels3, instances3, ["a", "b", "c"], boxes)
    predicted = mean_mask_prediction(truth, box, 5, masks)
    assert (predicted[1:3, 1:5] == 5).all() and (predicted[1:3, 5:9] == 7).all()
    assert tiou(predicted, truth, box, 5) == 1.0
    assert hamm(predicted, truth, box) == 1.0
    assert tiou(fill_box_prediction(truth, box, 5), truth, box, 5) == 0.5


def test_a_class_without_training_boxes_gets_the_fill_box_prediction():
    truth = np.zeros((3, 3), dtype=int)
    assert (mean_mask_prediction(truth, (0, 0, 2, 2), 4, {}) ==
            fill_box_prediction(truth, (0, 0, 2, 2), 4)).all()


def test_floor_rows_are_the_named_floors_and_nothing_else():
    assert floor_row_name("fill-box", "cityscapes") == "floor-fill-box-cityscapes"
    for row in ("floor-fill-box-cityscapes", "floor-mean-mask-nyu", "floor-mean-fill-facade",
                "floor-biharmonic-facade"):
        assert is_floor_row(row), row
    for row in ("mexgan-cityscapes", "gl-amex-facade", "floor-", "floor-fill-box-",
                "floor-unknown-cityscapes", "mexgan-floor-fill-box-cityscapes"):
        assert not is_floor_row(row), row
    assert is_floor_row("floor-mean-fill-facade", "facade")
    assert not is_floor_row("floor-mean-fill-facade", "cityscapes")
    assert not is_floor_row("floor-fill-box-cityscapes-2", "cityscapes")
    assert not is_floor_row("gl-facade", "facade")
