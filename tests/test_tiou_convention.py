"""The tIOU box convention (profiles.<name>.box_convention): the whole box, or the authors'
test slice without the box's last row and column; hand-made maps and boxes."""
import copy

import numpy as np
import pytest
import yaml

from pipeline.data.boxes import scored_box
from pipeline.config.loading import load_params
from pipeline.config.sections import ParamsError
from pipeline.config.validation import parse_params
from pipeline.evaluation.evaluation import BoxTestSet
from pipeline.data.inputs import EditBox
from pipeline.evaluation.metrics import hamm, tiou
from pipeline.evaluation.reports.tables import box_convention_note


def test_scored_box_drops_the_last_row_and_column_under_the_authors_convention():
    assert scored_box((2, 3, 7, 9)) == (2, 3, 7, 9)
    assert scored_box((2, 3, 7, 9), "whole") == (2, 3, 7, 9)
    assert scored_box((2, 3, 7, 9), "authors") == (2, 3, 6, 8)
    # a side of one pixel keeps it (the authors' slice would be empty)
    assert scored_box((4, 4, 5, 8), "authors") == (4, 4, 5, 7)
    with pytest.raises(ValueError, match="box convention 'inclusive'"):
        scored_box((0, 0, 2, 2), "inclusive")


def test_tiou_and_hamm_differ_by_the_last_row_and_column_only():
    truth = np.zeros((6, 6), dtype=int)
    truth[1:4, 1:4] = 5                       # the object: rows 1-3, columns 1-3
    predicted = truth.copy()
    predicted[1:5, 4] = 5                     # spill into the box's last column ...
    predicted[4, 1:5] = 5                     # ... and last row
    box = (1, 1, 5, 5)                        # half-open: rows / columns 1-4
    # whole box: 9 true object pixels, 16 predicted, all true ones inside the prediction
    assert tiou(predicted, truth, scored_box(box, "whole"), 5) == pytest.approx(9 / 16)
    assert hamm(predicted, truth, scored_box(box, "whole")) == pytest.approx(9 / 16)
    # the authors' box (rows / columns 1-3) never sees the spill
    assert tiou(predicted, truth, scored_box(box, "authors"), 5) == 1.0
    assert hamm(predicted, truth, scored_box(box, "authors")) == 1.0


class _Split:
    def __init__(self, labels):
        self.labels = labels


def test_floor_scores_follow_the_evaluation_convention_or_the_one_asked():
    truth = np.zeros((1, 6, 6), dtype=int)
    truth[0, 1:4, 1:4] = 5
    data = object.__new__(BoxTestSet)   # the floors need only the split and the boxes
    data.split, data.items = _Split(truth), [(0, EditBox("image0", 5, (1, 1, 5, 5)))]
    data.box_convention = "authors"
    # fill-box paints the whole 4x4 box with l_t: 9 of 16 pixels are the object
    assert data.floor_scores("fill-box") == ([1.0], [1.0])
    assert data.floor_scores("fill-box", "whole") == ([9 / 16], [9 / 16])


@pytest.mark.parametrize("path", ["params.yaml", "params_paper.yaml", "params_study.yaml",
                                  "params_study_twosm.yaml"])
def test_the_profiles_set_the_convention_and_a_bad_value_names_its_key(path):
    params = load_params(path)
    assert params.profiles["paper"].box_convention == "whole"
    assert params.profiles["authors"].box_convention == "authors"
    assert params.box_convention == params.profiles[params.profile].box_convention
    with open(path) as f:
        raw = yaml.safe_load(f)
    bad = copy.deepcopy(raw)
    bad["profiles"]["authors"]["box_convention"] = "inclusive"
    with pytest.raises(ParamsError, match=r"profiles\.authors\.box_convention: 'inclusive'"):
        parse_params(bad)


def test_the_tables_note_names_the_convention_and_both_floor_values():
    metrics = {"floor-fill-box-cityscapes": {"tiou": 0.79, "tiou_whole_box": 0.7870,
                                             "tiou_authors_box": 0.7921},
               "mexgan-cityscapes": {"tiou": 0.7}}
    note = box_convention_note(metrics, "authors")
    assert "without its last row and column" in note
    assert "floor-fill-box-cityscapes 0.7870 / 0.7921" in note
    assert "mexgan" not in note
    assert "the whole test box" in box_convention_note(metrics, "whole")
