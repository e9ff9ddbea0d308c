"""pipeline.evaluation.metrics: tIOU and hamm inside a half-open box, on hand-computed 4x4 maps; FID's
Fréchet distance and the labelled random-Inception stand-in."""
import numpy as np
import pytest
import torch

from pipeline.evaluation.metrics import FIDScorer, hamm, tiou

TARGET = np.array([[0, 0, 0, 0],
                   [0, 5, 5, 0],
                   [0, 5, 5, 0],
                   [0, 0, 0, 0]])
PRED = np.array([[0, 0, 0, 0],
                 [0, 5, 0, 0],
                 [5, 5, 5, 0],
                 [0, 0, 0, 0]])
# label 5: target at (1,1) (1,2) (2,1) (2,2); pred at (1,1) (2,0) (2,1) (2,2)
# -> intersection 3, union 5. Disagreeing pixels: (1,2) and (2,0).


def test_tiou_whole_map():
    assert tiou(PRED, TARGET, (0, 0, 4, 4), 5) == pytest.approx(3 / 5)


def test_hamm_whole_map():
    assert hamm(PRED, TARGET, (0, 0, 4, 4)) == pytest.approx(14 / 16)


def test_tiou_and_hamm_inside_a_smaller_box():
    # box rows 1-2, cols 1-2: target all 5, pred misses (1,2)
    assert tiou(PRED, TARGET, (1, 1, 3, 3), 5) == pytest.approx(3 / 4)
    assert hamm(PRED, TARGET, (1, 1, 3, 3)) == pytest.approx(3 / 4)


def test_only_prediction_has_the_label():
    # box = the single pixel (row 2, col 0): pred 5, target 0
    assert tiou(PRED, TARGET, (0, 2, 1, 3), 5) == 0.0
    assert hamm(PRED, TARGET, (0, 2, 1, 3)) == 0.0


def test_tiou_neither_map_has_the_label_is_one():
    assert tiou(PRED, TARGET, (0, 0, 4, 4), 9) == 1.0


def test_tiou_background_label():
    # label 0: target 12 pixels, pred 12 pixels, both 0 at 11 -> 11 / 13
    assert tiou(PRED, TARGET, (0, 0, 4, 4), 0) == pytest.approx(11 / 13)


def test_perfect_prediction():
    assert tiou(TARGET, TARGET, (0, 0, 4, 4), 5) == 1.0
    assert hamm(TARGET, TARGET, (0, 0, 4, 4)) == 1.0


def test_pixels_outside_the_box_are_ignored():
    scrambled = PRED.copy()
    scrambled[0, :] = 7
    scrambled[3, :] = 5
    scrambled[:, 3] = 1
    assert tiou(scrambled, TARGET, (0, 1, 3, 3), 5) == tiou(PRED, TARGET, (0, 1, 3, 3), 5)
    assert hamm(scrambled, TARGET, (0, 1, 3, 3)) == hamm(PRED, TARGET, (0, 1, 3, 3))


def test_hamm_is_one_iff_maps_agree_inside_the_box():
    assert hamm(PRED, TARGET, (0, 0, 1, 4)) == 0.75   # column 0: only (2,0) differs
    assert hamm(PRED, TARGET, (3, 0, 4, 4)) == 1.0    # column 3 agrees everywhere


def test_box_x_is_the_column_and_y_the_row():
    pred = np.array([[1, 1, 2, 2],
                     [1, 1, 2, 2]])
    target = np.array([[1, 1, 2, 3],
                       [1, 1, 3, 3]])
    # (2, 0, 4, 2) = columns 2-3 of both rows: pred [[2, 2], [2, 2]], target [[2, 3], [3, 3]]
    assert hamm(pred, target, (2, 0, 4, 2)) == 0.25
    assert tiou(pred, target, (2, 0, 4, 2), 3) == 0.0
    with pytest.raises(ValueError):
        hamm(pred, target, (0, 2, 2, 4))  # rows 2-3 do not exist in a 2-row map


@pytest.mark.parametrize("box", [(2, 2, 2, 4), (1, 3, 3, 3), (0, 0, 5, 4), (-1, 0, 2, 2)])
def test_bad_box_raises(box):
    with pytest.raises(ValueError):
        tiou(PRED, TARGET, box, 5)
    with pytest.raises(ValueError):
        hamm(PRED, TARGET, box)


def test_box_outside_the_smaller_map_raises():
    with pytest.raises(ValueError):
        hamm(PRED[:3], TARGET, (0, 0, 4, 4))
    with pytest.raises(ValueError):
        tiou(PRED[:, :3], TARGET, (0, 0, 4, 4), 5)


def test_maps_of_different_shapes_raise_even_when_the_box_fits_both():
    with pytest.raises(ValueError):
        hamm(PRED[:3], TARGET, (0, 0, 3, 3))


#---------------------------------------------------------------------------------------------
# FID and its stand-in


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """FIDScorer without Inception weights (an empty hub dir): the labelled stand-in."""
    empty = str(tmp_path_factory.mktemp("hub"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "get_dir", lambda: empty)
        return FIDScorer(2048, "", "cpu")


def test_frechet_distance_of_a_mean_shift_is_its_squared_length(standin):
    """Same covariance, means apart by d: the Fréchet distance is |d|^2 (FID's formula)."""
    features = np.random.RandomState(0).normal(size=(200, 4))
    shift = np.array([0.5, -1.0, 2.0, 0.0])
    assert standin.distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert standin.distance(features, features + shift) == pytest.approx(5.25, rel=1e-6)


def test_standin_is_zero_on_identical_sets_and_grows_with_a_shift(standin):
    assert standin.metric_name == "fid_standin_random_inception_64d" != "fid"
    assert standin.dims == 64 and not standin.pretrained
    # 4 images: each is resized to 299x299 for Inception (the cost); the 64-d stand-in's
    # covariance is singular with 12 images as with 4
    images = np.random.RandomState(1).randint(0, 200, (4, 32, 32, 3)).astype(np.uint8)
    real = standin.features(images)
    assert real.shape == (4, 64)
    assert standin.distance(real, standin.features(images.copy())) == pytest.approx(0, abs=1e-6)
    shifted = [standin.distance(real, standin.features((images + s).astype(np.uint8)))
               for s in (20, 55)]
    assert 0 < shifted[0] < shifted[1]


def test_fid_needs_two_images_per_set(standin):
    with pytest.raises(ValueError, match="at least 2 images"):
        standin.distance(np.zeros((1, 4)), np.zeros((3, 4)))
