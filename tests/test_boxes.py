"""pipeline.data.boxes: Eq 6 expanded boxes, instance lists, eligible boxes and the seed-679 test box.
Boxes are (x1, y1, x2, y2), half-open; every expected value below is worked out by hand."""
import numpy as np
import pytest

from pipeline.data.boxes import (box_mask, box_size_passes, eligible_instances, expand_box,
                            expanded_boxes, fill_box, instance_map_from_components,
                            list_instances, per_class_instances, select_test_box)

# ---------------------------------------------------------------------------------------------
# expand_box (Eq 6)


def test_expand_box_level_zero_is_the_box():
    assert expand_box((10, 5, 20, 15), 0, 3, 1, 64, 32) == (10, 5, 20, 15)


def test_expand_box_interior():
    # j*alpha = 6 columns each side, j*beta = 2 rows each side
    assert expand_box((10, 5, 20, 15), 2, 3, 1, 64, 32) == (4, 3, 26, 17)


def test_expand_box_alpha_is_horizontal_beta_is_vertical():
    assert expand_box((10, 10, 20, 20), 1, 4, 0, 64, 32) == (6, 10, 24, 20)
    assert expand_box((10, 10, 20, 20), 1, 0, 4, 64, 32) == (10, 6, 20, 24)


def test_expand_box_clamps_left_and_top():
    assert expand_box((1, 2, 5, 6), 1, 3, 3, 64, 32) == (0, 0, 8, 9)


def test_expand_box_clamps_right_and_bottom():
    # half-open: the right/bottom limits are the image width/height themselves
    assert expand_box((58, 28, 62, 31), 1, 3, 3, 64, 32) == (55, 25, 64, 32)


def test_expand_box_clamps_every_border():
    assert expand_box((2, 2, 6, 6), 10, 1, 1, 8, 8) == (0, 0, 8, 8)


def test_expand_box_full_image_box_is_allowed():
    assert expand_box((0, 0, 64, 32), 3, 2, 2, 64, 32) == (0, 0, 64, 32)


@pytest.mark.parametrize("box", [(5, 5, 5, 10),      # zero width
                                 (5, 5, 10, 5),      # zero height
                                 (8, 5, 6, 10),      # x2 < x1
                                 (-1, 0, 4, 4),      # left of the image
                                 (60, 0, 65, 10),    # past the right edge (width 64)
                                 (0, 30, 4, 33)])    # past the bottom edge (height 32)
def test_expand_box_rejects_bad_boxes(box):
    with pytest.raises(ValueError):
        expand_box(box, 1, 2, 2, 64, 32)


@pytest.mark.parametrize("j, alpha, beta", [(-1, 2, 2), (1, -2, 2), (1, 2, -1)])
def test_expand_box_rejects_negative_steps(j, alpha, beta):
    with pytest.raises(ValueError):
        expand_box((10, 10, 20, 20), j, alpha, beta, 64, 32)


def test_expanded_boxes_gives_q_plus_one_levels():
    assert expanded_boxes((10, 5, 20, 15), 2, 3, 1, 64, 32) == [
        (10, 5, 20, 15), (7, 4, 23, 16), (4, 3, 26, 17)]


def test_expanded_boxes_q_zero_is_the_box_alone():
    assert expanded_boxes((10, 5, 20, 15), 0, 3, 1, 64, 32) == [(10, 5, 20, 15)]


# ---------------------------------------------------------------------------------------------
# box_mask / fill_box


def test_box_mask_is_one_exactly_inside_the_half_open_box():
    expected = np.array([[0, 0, 0, 0, 0],
                         [0, 1, 1, 0, 0],
                         [0, 1, 1, 0, 0],
                         [0, 0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(box_mask((1, 1, 3, 3), 4, 5), expected)


def test_fill_box_paints_the_box_and_leaves_the_input_alone():
    labels = np.arange(12).reshape(3, 4)
    filled = fill_box(labels, (1, 0, 3, 2), 99)
    np.testing.assert_array_equal(filled, [[0, 99, 99, 3],
                                           [4, 99, 99, 7],
                                           [8, 9, 10, 11]])
    assert labels[0, 1] == 1


# ---------------------------------------------------------------------------------------------
# Instances, eligibility and the test box
#
# A 10x10 map (image area 100). Sorted unique ids: [0, 26, 24001, 24002, 26001, 26002].
#   0      background (plain id)
#   26     a car region without instance id (plain id of an edit class), rows 8-9 -> box area 20
#   24001  rows 1-3, cols 1-3              -> box (1, 1, 4, 4),  area 9  -> 0.09
#   24002  rows 5-6, cols 8-9              -> box (8, 5, 10, 7), area 4  -> 0.04
#   26001  L shape: row 5 cols 1-5 + (6,1) -> box (1, 5, 6, 7),  area 10 -> 0.10 (6 pixels)
#   26002  row 0, cols 5-6                 -> box (5, 0, 7, 1),  area 2  -> 0.02


def _instance_map():
    m = np.zeros((10, 10), dtype=np.int64)
    m[1:4, 1:4] = 24001
    m[5:7, 8:10] = 24002
    m[5, 1:6] = 26001
    m[6, 1] = 26001
    m[0, 5:7] = 26002
    m[8:10, :] = 26
    return m


EDIT = (24, 26)


def test_list_instances_sorted_with_tight_boxes():
    found = [(i.instance_id, i.label, i.box, i.area_fraction)
             for i in list_instances(_instance_map())]
    assert found == [(0, 0, (0, 0, 10, 8), 0.8),   # background stops above the rows of 26
                     (26, 26, (0, 8, 10, 10), 0.2),
                     (24001, 24, (1, 1, 4, 4), 0.09),
                     (24002, 24, (8, 5, 10, 7), 0.04),
                     (26001, 26, (1, 5, 6, 7), 0.1),
                     (26002, 26, (5, 0, 7, 1), 0.02)]


def test_tight_eligible_uses_half_open_box_area_not_pixel_count():
    # 26001 covers 6 pixels (0.06) but its box covers 10 (0.10)
    ids = [i.instance_id for i in eligible_instances(_instance_map(), EDIT, 0.08, "tight")]
    assert ids == [24001, 26001]


def test_tight_threshold_is_inclusive():
    ids = [i.instance_id for i in eligible_instances(_instance_map(), EDIT, 0.04, "tight")]
    assert ids == [24001, 24002, 26001]


def test_tight_plain_ids_are_never_eligible():
    # id 26 is a car label with a large box but no instance number
    ids = [i.instance_id for i in eligible_instances(_instance_map(), EDIT, 0.0001, "tight")]
    assert 26 not in ids and 0 not in ids
    assert ids == [24001, 24002, 26001, 26002]


def test_eligible_respects_edit_classes():
    ids = [i.instance_id for i in eligible_instances(_instance_map(), (24,), 0.01, "tight")]
    assert ids == [24001, 24002]


def test_seed_679_permutation_of_six():
    # numpy's RandomState(679) shuffle of 6 positions, hard-coded for the cases below
    assert list(np.random.RandomState(679).permutation(6)) == [0, 1, 3, 4, 2, 5]


def test_tight_select_test_box_skips_ineligible_positions():
    # positions visited: 0 (id 0), 1 (id 26, plain), 3 (24002, 0.04 < 0.05), 4 (26001) -> 26001
    chosen = select_test_box(_instance_map(), EDIT, 0.05, "tight")
    assert chosen.instance_id == 26001
    assert chosen.label == 26
    assert chosen.box == (1, 5, 6, 7)


def test_tight_select_test_box_lower_threshold_takes_the_earlier_position():
    # at 0.04, 24002 (position 3) is eligible and is visited before 26001
    assert select_test_box(_instance_map(), EDIT, 0.04, "tight").instance_id == 24002


def test_select_test_box_with_one_edit_class():
    # visits 0, 26, 24002 (too small), 26001 (not class 24), 24001 -> 24001
    assert select_test_box(_instance_map(), (24,), 0.05, "tight").instance_id == 24001


def test_select_test_box_is_deterministic():
    first = select_test_box(_instance_map(), EDIT, 0.05, "tight")
    np.random.seed(123)  # the global numpy state must not matter
    np.random.rand(7)
    second = select_test_box(_instance_map(), EDIT, 0.05, "tight")
    assert first == second


def test_select_test_box_none_when_nothing_is_eligible():
    assert select_test_box(_instance_map(), EDIT, 0.5, "tight") is None
    assert select_test_box(np.zeros((4, 4), dtype=np.int64), EDIT, 0.01, "tight") is None


# ---------------------------------------------------------------------------------------------
# The authors' rule (data.box_rule: authors, the default): plain ids of an edit class are
# instances too, and the size filter is (h - 1)(w - 1) > threshold * H * W. On the map above:
#   26     box (0, 8, 10, 10): h 2, w 10 -> 1 * 9 = 9 -> 0.09
#   24001  (1, 1, 4, 4): 2 * 2 = 4 -> 0.04 | 24002 (8, 5, 10, 7): 1 * 1 = 1 -> 0.01
#   26001  (1, 5, 6, 7): 1 * 4 = 4 -> 0.04 | 26002 (5, 0, 7, 1): 0 * 1 = 0 -> never


def test_authors_rule_counts_plain_ids_of_edit_classes():
    ids = [i.instance_id for i in eligible_instances(_instance_map(), EDIT, 0.0001, "authors")]
    assert ids == [26, 24001, 24002, 26001]          # 0: not an edit class; 26002: size 0


def test_authors_size_filter_is_strict_on_the_inclusive_index_ranges():
    # 24001 and 26001 have (h-1)(w-1) = 4: eligible at 0.039, not at 0.04 (strict >)
    assert [i.instance_id for i in eligible_instances(_instance_map(), EDIT, 0.039,
                                                      "authors")] == [26, 24001, 26001]
    assert [i.instance_id for i in eligible_instances(_instance_map(), EDIT, 0.04,
                                                      "authors")] == [26]


@pytest.mark.parametrize("box, threshold, authors, tight", [
    ((0, 0, 3, 3), 0.04, False, True),    # (2*2 = 4) > 4 no; 9 >= 4 yes
    ((0, 0, 3, 3), 0.039, True, True),
    ((0, 0, 10, 1), 0.0, False, True),     # one row: (h - 1) = 0, never above a threshold >= 0
    ((2, 2, 4, 7), 0.04, False, True),    # 1 * 4 = 4 vs 2 * 5 = 10
    ((2, 2, 5, 7), 0.08, False, True),    # 4 * 2 = 8 > 8 no; 3 * 5 = 15 >= 8 yes
])
def test_box_size_passes_both_rules(box, threshold, authors, tight):
    assert box_size_passes(box, 10, 10, threshold, "authors") is authors
    assert box_size_passes(box, 10, 10, threshold, "tight") is tight


def test_box_size_rule_must_be_known():
    with pytest.raises(ValueError, match="unknown box rule 'pixels'"):
        box_size_passes((0, 0, 2, 2), 4, 4, 0.1, "pixels")


def test_authors_select_test_box_takes_the_plain_id_group_region():
    # positions visited: 0 (id 0, not an edit class), 1 (id 26: 0.09 > 0.05) -> the car group
    chosen = select_test_box(_instance_map(), EDIT, 0.05, "authors")
    assert (chosen.instance_id, chosen.label, chosen.box) == (26, 26, (0, 8, 10, 10))


def test_per_class_instances_is_the_authors_helen_map():
    labels = np.array([[2, 2, 0, 0, 2],
                       [2, 0, 0, 0, 2],
                       [0, 0, 3, 0, 0]])
    np.testing.assert_array_equal(per_class_instances(labels), labels * 1000)
    # one instance per class: the two brow fragments (label 2) give one box over both
    found = {i.instance_id: i.box for i in list_instances(per_class_instances(labels))}
    assert found == {0: (0, 0, 5, 3), 2000: (0, 0, 5, 2), 3000: (2, 2, 3, 3)}
    assert [i.instance_id for i in eligible_instances(per_class_instances(labels), (2, 3), 0.0,
                                                      "authors")] == [2000]


# ---------------------------------------------------------------------------------------------
# instance_map_from_components


def test_components_become_numbered_instances():
    labels = np.array([[2, 2, 0, 0, 2],
                       [2, 0, 0, 0, 2],
                       [0, 0, 3, 0, 0],
                       [0, 0, 3, 0, 0]])
    expected = np.array([[2001, 2001, 0, 0, 2002],
                         [2001, 0, 0, 0, 2002],
                         [0, 0, 3, 0, 0],
                         [0, 0, 3, 0, 0]])
    np.testing.assert_array_equal(instance_map_from_components(labels, (2,)), expected)


def test_components_are_eight_connected():
    labels = np.array([[5, 0, 0],
                       [0, 5, 0],
                       [0, 0, 0]])
    np.testing.assert_array_equal(instance_map_from_components(labels, (5,)),
                                  [[5001, 0, 0], [0, 5001, 0], [0, 0, 0]])
