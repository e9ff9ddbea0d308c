"""pipeline.evaluation.map_statistics on hand-checked maps, and the synthetic street world against the
real maps' statistics (issue 35) on a small sample."""
import numpy as np
import pytest

from pipeline.evaluation import map_statistics as ms
from pipeline.data.synthetic import generate_split

EDIT = (24, 25, 26, 27, 28, 31, 32, 33)


def _two_cars():
    """8x10 map: car 26001 an L of 6 pixels in box (1,1)-(4,4) (x1,y1,x2,y2), car 26002 a 2x2
    square at (3,3)-(5,5) overlapping that box's corner pixel (3,3), a plain-26 pixel (crowd)
    at (9,7), road elsewhere."""
    labels = np.full((8, 10), 7, dtype=np.int64)
    instances = labels.copy()
    for y, x in [(1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (3, 2)]:
        labels[y, x], instances[y, x] = 26, 26001
    labels[3:5, 3:5], instances[3:5, 3:5] = 26, 26002
    labels[7, 9], instances[7, 9] = 26, 26
    return labels, instances


def test_box_table_by_hand():
    labels, instances = _two_cars()
    table = ms.map_box_table(labels, instances, EDIT, 0.0, "tight")
    assert ms.column(table, "instance").tolist() == [26001, 26002]   # tight: no plain 26
    first = dict(zip(ms.TABLE_COLUMNS, table[0].tolist()))
    assert (first["x1"], first["y1"], first["x2"], first["y2"]) == (1, 1, 4, 4)
    assert first["object_pixels"] == 6
    assert first["label_pixels"] == 7              # its 6 + car 2's pixel at (3,3)
    assert first["other_pixels"] == 1 and first["same_class_other_pixels"] == 1
    assert first["truncated"] == 0
    second = dict(zip(ms.TABLE_COLUMNS, table[1].tolist()))
    assert second["other_pixels"] == 0 and second["object_pixels"] == 4
    m = ms.box_measures(table)
    assert m["fill"].tolist() == pytest.approx([6 / 9, 1.0])
    assert m["label_fill"].tolist() == pytest.approx([7 / 9, 1.0])
    assert m["holds_other"].tolist() == [True, False]


def test_crowd_pixels_count_as_thing_not_as_object():
    labels, instances = _two_cars()
    labels[2, 3], instances[2, 3] = 26, 26           # a crowd pixel inside car 1's box
    table = ms.map_box_table(labels, instances, EDIT, 0.0, "tight")
    first = dict(zip(ms.TABLE_COLUMNS, table[0].tolist()))
    assert first["other_pixels"] == 1 and first["thing_other_pixels"] == 2


def test_truncation_and_size_threshold():
    labels, instances = _two_cars()
    labels[5:8, 7:10], instances[5:8, 7:10] = 24, 24001     # a person at the corner
    table = ms.map_box_table(labels, instances, EDIT, 0.1, "tight")  # >= 8 pixels of 80
    assert ms.column(table, "instance").tolist() == [24001, 26001]   # sorted by id
    assert ms.column(table, "truncated").tolist() == [1, 0]


def test_class_summary_and_layout_by_hand():
    labels, instances = _two_cars()
    table = ms.box_table(np.stack([labels, labels]), np.stack([instances, instances]), EDIT,
                         0.0, "tight")
    summary = ms.class_summary(table, 2, 8, 10)
    assert summary["car"]["boxes_per_map"] == 2.0
    assert summary["car"]["holds_other"] == 0.5
    assert summary["car"]["fill"] == pytest.approx((6 / 9 + 1) / 2)
    layout = ms.stuff_layout(np.stack([labels]), {"road": 7}, bands=2)
    assert layout["road"]["bands"] == pytest.approx([1 - 8 / 40, 1 - 3 / 40])


def test_floors_by_hand():
    # two groups; each map has one car filling its box but for its top-left corner: fill-box
    # scores 8/9; the other group's mean mask is < 0.5 at that corner (every car lacks it),
    # so mean-mask paints it with the ring label (road) and scores 1
    labels = np.full((2, 8, 8), 7, dtype=np.int64)
    labels[:, 2:5, 2:5] = 26
    labels[:, 2, 2] = 7
    instances = np.where(labels == 26, 26001, labels)
    table = ms.box_table(labels, instances, EDIT, 0.0, "tight")
    scores = ms.floor_scores(labels, instances, table, ["a", "b"])
    assert scores["fill-box"].tolist() == pytest.approx([8 / 9, 8 / 9])
    assert scores["mean-mask"].tolist() == pytest.approx([1.0, 1.0])


# ---------------------------------------------------------------------------------------------
# The synthetic street world (issue 35): deterministic, and like the real maps


@pytest.fixture(scope="module")
def street_sample():
    split = generate_split("cityscapes", "train", 40, 128, 256, 0)
    return split, ms.box_table(split.labels, split.instances, EDIT, 0.0, "tight")


def test_street_maps_are_deterministic_per_index():
    a = generate_split("cityscapes", "train", 3, 128, 256, 0)
    b = generate_split("cityscapes", "train", 5, 128, 256, 0)
    for key in ("labels", "instances", "photos"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key)[:3])
    c = generate_split("cityscapes", "train", 3, 128, 256, 1)
    assert not np.array_equal(a.labels, c.labels)


def test_street_maps_at_small_sizes():
    split = generate_split("cityscapes", "test", 4, 16, 32, 0)
    assert split.labels.shape == (4, 16, 32) and split.photos.shape == (4, 16, 32, 3)
    assert set(np.unique(split.labels)) <= set(range(34))


def test_street_objects_overlap_like_real_ones(street_sample):
    # real (video frames, any size): 58 % of car boxes hold another object; gtFine persons 30 %
    _, table = street_sample
    summary = ms.class_summary(table, 40, 128, 256)
    assert summary["car"]["holds_other"] >= 0.6        # a world without occlusion fails here
    assert 0.15 <= summary["person"]["holds_other"] <= 0.5


def test_street_silhouettes_fill_their_boxes_like_real_ones(street_sample):
    # real: car fill 0.73 (video, any size), person 0.63 (gtFine); bicycles have holes
    _, table = street_sample
    summary = ms.class_summary(table, 40, 128, 256)
    assert 0.55 <= summary["car"]["fill"] <= 0.8
    assert 0.5 <= summary["person"]["fill"] <= 0.72
    assert summary["bicycle"]["fill"] < 0.5
    assert summary["person"]["aspect"] < 0.7 < summary["car"]["aspect"]


def test_street_eligible_boxes_like_real_ones(street_sample):
    # real video frames (tight, 0.02): 0.58 eligible car boxes per map, car fill 0.725, 80 %
    # holding another object, 17 % truncated, and no eligible box of a thin class; the issue's
    # targets: fill within 0.05, boxes per map within 30 %, holding within 10 points
    split, _ = street_sample
    table = ms.box_table(split.labels, split.instances, EDIT, 0.02, "tight")
    summary = ms.class_summary(table, 40, 128, 256)
    car = summary["car"]
    assert 0.58 * 0.7 <= car["boxes_per_map"] <= 0.58 * 1.3
    assert abs(car["fill"] - 0.725) <= 0.05
    assert abs(car["holds_other"] - 0.80) <= 0.10
    assert car["truncated"] > 0.0
    # persons, riders and two-wheelers (fill 0.2-0.5) stand farther than 14 m: at 0.02 they
    # rarely pass, as in the real maps (else they pull the fill-box floor down)
    thin = np.isin(ms.column(table, "label"), (24, 25, 32, 33))
    assert thin.mean() <= 0.02


def test_street_silhouettes_vary(street_sample):
    # no stereotyped shape: car boxes' aspects spread (side, rear, front, turned views)
    _, table = street_sample
    m = ms.box_measures(table)
    cars = ms.column(table, "label") == 26
    big = cars & (m["height"] >= 6)
    assert np.std(m["aspect"][big]) > 0.3
    assert np.std(m["fill"][big]) > 0.08


def _shape_spread(split, table, rows, grid=12):
    """Mean absolute deviation of the boxes' own-object masks (resized to grid x grid) from
    their mean: 0 for one stereotyped silhouette."""
    from skimage.transform import resize
    masks = np.array([resize((split.instances[r[0], r[4]:r[6], r[3]:r[5]] == r[1]).astype(float),
                             (grid, grid), order=1, mode="edge") for r in table[rows]])
    return float(np.mean(np.abs(masks - masks.mean(axis=0))))


def test_street_persons_take_several_poses(street_sample):
    # unoccluded, uncut persons >= 8 rows: spread 0.29 with the poses (stand, walking front /
    # side, arms, coats, bags); one pose per class gives 0.22
    split, table = street_sample
    m = ms.box_measures(table)
    persons = ((ms.column(table, "label") == 24) & (m["height"] >= 8) & ~m["truncated"]
               & ~m["holds_other"])
    assert persons.sum() >= 30
    assert _shape_spread(split, table, persons) > 0.25


def test_street_cars_have_several_silhouettes():
    # the three body kinds and the views (rear, turned, side) draw different cars at the same
    # place: no one silhouette per class (at 256x128 occlusion and perspective alone spread
    # the car boxes' shapes about as much, so this is checked on isolated cars)
    from pipeline.data.scene_canvas import Canvas
    from pipeline.data.street_scene import _Street

    def car(kind, heading):
        rng = np.random.default_rng(0)
        canvas = Canvas(128, 256, rng)
        street = _Street(canvas, rng)
        size = {"sedan": (4.6, 1.8, 1.45), "hatch": (4.0, 1.75, 1.5), "van": (4.9, 1.9, 1.85)}
        street.vehicle(26, 2.0, 8.0, heading, kind, *size[kind])
        return canvas.instances >= 26000

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    shapes = [car(kind, heading) for kind in ("sedan", "hatch", "van")
              for heading in (0.0, 0.6, "across")]
    assert all(s.sum() > 200 for s in shapes)
    for i in range(len(shapes)):
        for j in range(i):
            assert iou(shapes[i], shapes[j]) < 0.9, (i, j)
