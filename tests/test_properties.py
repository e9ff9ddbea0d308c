"""Property tests (hypothesis) of the box geometry and the metrics: expanded boxes stay inside
the image and grow monotonically with j, the A-MEx masks are exactly the expanded boxes, tIOU
and hamm lie in [0, 1], hamm = 1 iff the maps agree inside the box, and the seed-679 test box
does not depend on how the instance map is laid out in memory."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.data.boxes import (box_mask, eligible_instances, expand_box, expanded_boxes,
                            list_instances, select_test_box)
from pipeline.models.losses import expanded_masks
from pipeline.evaluation.metrics import hamm, tiou

SETTINGS = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def image_and_box(draw, max_side=48):
    """(width, height, box) with a non-empty half-open box inside the image."""
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max_side))
    x1 = draw(st.integers(0, width - 1))
    x2 = draw(st.integers(x1 + 1, width))
    y1 = draw(st.integers(0, height - 1))
    y2 = draw(st.integers(y1 + 1, height))
    return width, height, (x1, y1, x2, y2)


def contains(outer, inner):
    return (outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2]
            and inner[3] <= outer[3])


#---------------------------------------------------------------------------------------------
# Expanded boxes (Eq 6)


@SETTINGS
@given(image_and_box(), st.integers(0, 12), st.integers(0, 12), st.integers(0, 12))
def test_expanded_boxes_stay_inside_the_image_and_grow_with_j(geometry, q, alpha, beta):
    width, height, box = geometry
    boxes = expanded_boxes(box, q, alpha, beta, width, height)
    assert len(boxes) == q + 1 and boxes[0] == box
    for j, expanded in enumerate(boxes):
        x1, y1, x2, y2 = expanded
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height       # inside, non-empty
        assert contains(expanded, box)
        # Exactly Eq 6 clamped to the image.
        assert expanded == (max(0, box[0] - j * alpha), max(0, box[1] - j * beta),
                            min(width, box[2] + j * alpha), min(height, box[3] + j * beta))
        if j:
            assert contains(expanded, boxes[j - 1])                      # monotone in j


@SETTINGS
@given(image_and_box(max_side=24), st.integers(0, 4), st.integers(0, 6), st.integers(0, 6))
def test_amex_masks_are_the_expanded_boxes(geometry, q, alpha, beta):
    width, height, box = geometry
    masks = expanded_masks([box], q, alpha, beta, height, width).numpy()
    for j in range(q + 1):
        expected = box_mask(expand_box(box, j, alpha, beta, width, height), height, width)
        assert np.array_equal(masks[j, 0, 0], expected)
        if j:
            assert (masks[j] >= masks[j - 1]).all()


#---------------------------------------------------------------------------------------------
# tIOU and hamm


@st.composite
def maps_and_box(draw):
    width, height, box = draw(image_and_box(max_side=16))
    labels = draw(st.integers(1, 4))
    cells = st.lists(st.integers(0, labels - 1), min_size=width * height,
                     max_size=width * height)
    pred = np.array(draw(cells), dtype=np.int64).reshape(height, width)
    target = np.array(draw(cells), dtype=np.int64).reshape(height, width)
    if draw(st.booleans()):  # often let the maps agree inside the box
        x1, y1, x2, y2 = box
        pred[y1:y2, x1:x2] = target[y1:y2, x1:x2]
    label = draw(st.integers(0, labels))
    return pred, target, box, label


@SETTINGS
@given(maps_and_box())
def test_tiou_and_hamm_lie_in_unit_interval(case):
    pred, target, box, label = case
    assert 0.0 <= tiou(pred, target, box, label) <= 1.0
    assert 0.0 <= hamm(pred, target, box) <= 1.0
    assert tiou(pred, target, box, label) == tiou(target, pred, box, label)   # symmetric


@SETTINGS
@given(maps_and_box())
def test_hamm_is_one_iff_the_maps_agree_in_the_box(case):
    pred, target, box, label = case
    x1, y1, x2, y2 = box
    agree = np.array_equal(pred[y1:y2, x1:x2], target[y1:y2, x1:x2])
    assert (hamm(pred, target, box) == 1.0) == agree
    if agree:
        assert tiou(pred, target, box, label) == 1.0


@SETTINGS
@given(maps_and_box())
def test_metrics_ignore_pixels_outside_the_box(case):
    pred, target, box, label = case
    x1, y1, x2, y2 = box
    scrambled = (pred + 1) % 5
    scrambled[y1:y2, x1:x2] = pred[y1:y2, x1:x2]
    assert hamm(scrambled, target, box) == hamm(pred, target, box)
    assert tiou(scrambled, target, box, label) == tiou(pred, target, box, label)


#---------------------------------------------------------------------------------------------
# The seed-679 test box


@st.composite
def instance_maps(draw):
    """A small instance map: background ids < 1000 plus a few objects id*1000+k."""
    height, width = draw(st.integers(4, 16)), draw(st.integers(4, 16))
    ids = draw(st.lists(st.sampled_from([0, 7, 11, 26, 24001, 24002, 26001, 26003, 33001, 26010]),
                        min_size=height * width, max_size=height * width))
    return np.array(ids, dtype=np.int64).reshape(height, width)


def reference_test_box(instances, classes, threshold, rule, seed=679):
    """The authors' rule, written out: shuffle the positions of the sorted unique ids with a
    fresh RandomState(seed), take the first eligible instance."""
    ids = sorted(int(v) for v in np.unique(instances))
    eligible = {i.instance_id for i in eligible_instances(instances, classes, threshold, rule)}
    for position in np.random.RandomState(seed).permutation(len(ids)):
        if ids[position] in eligible:
            return ids[position]
    return None


@SETTINGS
@given(instance_maps(), st.sampled_from([0.0, 0.01, 0.05, 0.2]),
       st.sampled_from(["authors", "tight"]))
def test_test_box_is_a_pure_function_of_the_map(instances, threshold, rule):
    classes = (24, 26, 33)
    chosen = select_test_box(instances, classes, threshold, rule)
    expected = reference_test_box(instances, classes, threshold, rule)
    assert (chosen.instance_id if chosen else None) == expected
    # Same choice whatever the memory layout, dtype, or the order of the edit classes.
    variants = [np.asfortranarray(instances), instances.astype(np.int32),
                np.ascontiguousarray(instances[:, ::-1])[:, ::-1], instances.copy()]
    for variant in variants:
        again = select_test_box(variant, (33, 26, 24), threshold, rule)
        assert again == chosen
    # The instance list is sorted by id, independent of where the ids first occur.
    assert [i.instance_id for i in list_instances(instances)] == sorted(np.unique(instances))
