"""The Table 2 study (make study PROFILE=twosm): its params, its summary's questions, the TwoSM
diagnostics on hand-made streams, the comparison with the colour rows' study, and
tools/repro_parallel.py (the training runs N at a time)."""
import os
import sys

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config.loading import load_params
from pipeline.data.sets import get_spec
from pipeline.evaluation.diagnostics import diagnose_edits
from pipeline.evaluation.evaluation import twosm_edited_maps
from pipeline.data.inputs import EditBox
from pipeline.evaluation.reports.study_questions import study_rows
from pipeline.evaluation.reports.study_references import reference_lines
from pipeline.evaluation.reports.study_summary import study_summary
from pipeline.models.twosm import TwoStreamGenerator
from pipeline.models.twosm_views import Observation

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import repro_parallel  # noqa: E402

SPEC = get_spec("cityscapes")
TWOSM_ROWS = ["twosm-cityscapes", "twosm-full-cityscapes", "twosm-full-mex-cityscapes",
              "twosm-full-amex-cityscapes"]
BATCH1 = "twosm-full-batch1-cityscapes"   # +Full at batch 1: a variant, beside +Full at batch 8


def test_the_twosm_study_params_are_table_2_as_hong_et_al_built_it():
    params = load_params(os.path.join(REPO, "params_study_twosm.yaml"))
    colour = load_params(os.path.join(REPO, "params_study.yaml"))
    assert list(params.rows) == [BATCH1] + TWOSM_ROWS and len(params.seeds) >= 3
    assert params.twosm.batch_size == 8 and params.rows[BATCH1].batch_size == 1
    assert params.twosm.build == "hong" and params.twosm.labels == "painted_mask"
    # the same data and test boxes as the colour rows' study, so the two can be paired
    for key in ("width", "height", "size_threshold", "synthetic_train", "synthetic_test"):
        assert getattr(params.datasets["cityscapes"], key) == getattr(
            colour.datasets["cityscapes"], key)
    assert params.evaluate == colour.evaluate and params.data == colour.data
    assert params.profile == "paper"
    assert study_rows(params, "cityscapes").trained == TWOSM_ROWS


#---------------------------------------------------------------------------------------------
# The TwoSM diagnostics, on hand-made streams


def tiny_map():
    labels = np.full((16, 32), 7)
    instances = np.full((16, 32), 7)
    labels[6:12, 10:18], instances[6:12, 10:18] = 26, 26001
    return labels, instances


class HandMadeTwoSM(TwoStreamGenerator):
    """Mask stream 1 in view columns < 14; the context stream says 'road' (7) everywhere."""

    def __init__(self, observation):
        super().__init__(SPEC.num_labels + 2, SPEC.num_labels, ngf=4, n_downsampling=1,
                         n_blocks=1, label_rule="painted_mask")
        self.observation = observation

    def forward(self, x):
        out = torch.zeros(x.shape[0], 1 + SPEC.num_labels, *x.shape[-2:])
        out[:, 0, :, :14] = 1.0
        out[:, 1 + 7] = 1.0
        return out


class _Split:
    def __init__(self, labels, instances):
        self.labels, self.instances = labels[None], instances[None]


def test_twosm_diagnostics_read_the_streams_without_a_colour_decode():
    labels, instances = tiny_map()
    split = _Split(labels, instances)
    items = [(0, EditBox("a", 26, (8, 4, 20, 14)))]          # a car box around the car
    record, = diagnose_edits(twosm_edited_maps, HandMadeTwoSM(Observation("full", 16)), split,
                             SPEC, items)
    # painted: the box's columns 8-13 are car (mask > 0.5), 14-19 the context's road
    assert record["target_share"] == pytest.approx(60 / 120)
    assert record["kept_true_share"] == pytest.approx(36 / 120)   # road kept, not the car
    assert record["other_share"] == pytest.approx(24 / 120)
    assert record["largest_blob_share"] == 1.0
    # the context says road everywhere: right outside the box (all road), 0 car in the box
    assert record["outside_decode_accuracy"] == 1.0
    assert record["context_tiou"] == 0.0


def test_a_local_windows_observed_region_is_the_window_minus_the_box():
    labels, instances = tiny_map()
    split = _Split(labels, instances)
    # box 8 x 6 at (12, 5): window = side 16 centred -> (8, 0, 24, 16)
    items = [(0, EditBox("a", 24, (12, 5, 20, 11)))]
    edited, = twosm_edited_maps(HandMadeTwoSM(Observation("local", 16)), split, SPEC, items,
                                observe=True)
    assert edited.observed_region.sum() == 16 * 16 - 8 * 6
    assert not edited.observed_region[:, :8].any() and not edited.observed_region[5:11, 12:20].any()
    assert (edited.context[5:11, 12:20] == 7).all()
    assert (edited.labels[5:11, 12:16] == 24).all()      # left half of the view: mask 1


#---------------------------------------------------------------------------------------------
# The summary


def _differences(values: dict) -> pd.DataFrame:
    return pd.DataFrame([{"comparison": f"{a} − {b}", "metric": metric, "difference": d,
                          "ci_low": d - 0.05, "ci_high": d + 0.05,
                          "excludes_0": "yes" if abs(d) > 0.05 else "no"}
                         for (a, b), d in values.items() for metric in ("tiou", "hamm")])


def test_the_twosm_summary_asks_table_2s_questions():
    params = load_params(os.path.join(REPO, "params_study_twosm.yaml"))
    local, full, mex, amex = TWOSM_ROWS
    fill = "floor-fill-box-cityscapes"
    differences = _differences({(full, local): 0.12, (mex, full): -0.01, (amex, full): -0.2,
                                **{(row, fill): 0.1 for row in TWOSM_ROWS}})
    metrics = {row: {"tiou": 0.8, "hamm": 0.8, "test_boxes": 47}
               for row in TWOSM_ROWS + [fill, "floor-mean-mask-cityscapes"]}
    diagnostics = pd.DataFrame([{"row": row, "seed": 0, "image": "i", "label": 26,
                                 "outside_decode_accuracy": 0.97, "target_share": 0.6,
                                 "kept_true_share": 0.3, "other_share": 0.1,
                                 "largest_blob_share": 0.9, "context_tiou": 0.55}
                                for row in TWOSM_ROWS])
    text = study_summary(metrics=metrics, differences=differences, eval_curves={},
                         held_back={}, params=params, wall_seconds=600, platform="test CPU",
                         folder="study_twosm", diagnostics=diagnostics,
                         params_file="params_study_twosm.yaml")
    assert text.startswith("## CPU study of Table 2, twosm build `hong`\n")
    # the real-map study of the same rows has a title of its own (reports/README.md shows both)
    real = load_params(os.path.join(REPO, "params_study_real.yaml"))
    text_real = study_summary(metrics=metrics, differences=differences, eval_curves={},
                              held_back={}, params=real, wall_seconds=600, platform="test CPU",
                              folder="study_real", params_file="params_study_real.yaml")
    assert text_real.startswith(
        "## CPU study of Table 2, twosm build `hong` on real cityscapes label maps\n")
    assert "`make study` (`params_study_twosm.yaml`, profile `paper`: twosm.build `hong`" in text
    assert "| Does TwoSM+Full beat TwoSM? | **yes**: tiou" in text
    assert "| Does TwoSM+Full+MEx beat TwoSM+Full? | **cannot tell**" in text
    assert "| Does TwoSM+Full+A-MEx beat TwoSM+Full? | **no, it is worse**" in text
    assert ("**In short:** on tIOU, TwoSM+Full beats TwoSM, TwoSM+Full+MEx cannot be told apart "
            "from TwoSM+Full, TwoSM+Full+A-MEx is worse than TwoSM+Full, and "
            "twosm-cityscapes, twosm-full-cityscapes") in text
    assert "(study_twosm/table2.md)" in text
    assert "context-argmax tIOU |" in text
    assert "| twosm-full-cityscapes | 0.9700 | 0.600 | 0.300 | 0.100 | 0.900 | 0.5500 |" in text
    assert "MExGAN" not in text


def test_the_summary_asks_about_the_batch_1_variant_beside_the_row_it_varies():
    params = load_params(os.path.join(REPO, "params_study_twosm.yaml"))
    full, fill = TWOSM_ROWS[1], "floor-fill-box-cityscapes"
    differences = _differences({(BATCH1, full): -0.08, (BATCH1, fill): 0.02})
    metrics = {row: {"tiou": 0.7, "hamm": 0.7, "test_boxes": 12}  # fewer than eval_boxes
               for row in TWOSM_ROWS + [BATCH1, fill, "floor-mean-mask-cityscapes"]}
    text = study_summary(metrics=metrics, differences=differences, eval_curves={},
                         held_back={}, params=params, wall_seconds=600, platform="test CPU",
                         folder="study_twosm", params_file="params_study_twosm.yaml")
    assert (f"| Does {BATCH1} (batch 1 against 8) beat {full}? | **no, it is worse**: "
            "tiou") in text
    assert f"| Does {BATCH1} beat the fill-box floor? | **cannot tell**" in text
    assert f"| {BATCH1} | 0.7000 | 0.7000 |" in text
    assert params.train.eval_boxes > 12 and "fill-box floor on the held-back 12 boxes" in text
    assert study_rows(params, "cityscapes").trained == TWOSM_ROWS   # it plays no paper role


def test_the_summary_sets_an_earlier_runs_answers_beside_its_own():
    """--previous: each question answered by each run's own interval, the changed ones named,
    one table per earlier run."""
    params = load_params(os.path.join(REPO, "params_study_twosm.yaml"))
    local, full, mex, amex = TWOSM_ROWS
    fill = "floor-fill-box-cityscapes"
    now = _differences({(full, local): 0.12, (mex, full): -0.01, (amex, full): -0.2})
    before = _differences({(full, local): 0.12, (mex, full): 0.09})
    metrics = {row: {"tiou": 0.8, "hamm": 0.8, "test_boxes": 47}
               for row in TWOSM_ROWS + [fill, "floor-mean-mask-cityscapes"]}
    old_metrics = {**metrics, full: {"tiou": 0.625, "hamm": 0.6}}
    text = study_summary(metrics=metrics, differences=now, eval_curves={}, held_back={},
                         params=params, wall_seconds=600, platform="test CPU",
                         previous=[{"name": "the old world's run", "differences": before,
                                    "metrics": old_metrics},
                                   {"name": "the coarse-curve run", "differences": now,
                                    "metrics": metrics}])
    assert ("Beside the old world's run: the same questions, each answered by its own run's "
            "paired 95 % intervals; 1 of ") in text
    assert "Changed: Does TwoSM+Full+MEx beat TwoSM+Full?" in text
    assert ("| Does TwoSM+Full beat TwoSM? | yes: +0.120 [+0.070, +0.170] | yes: +0.120 "
            "[+0.070, +0.170] | no |") in text
    assert ("| Does TwoSM+Full+MEx beat TwoSM+Full? | yes: +0.090 [+0.040, +0.140] | cannot "
            "tell: -0.010 [-0.060, +0.040] | **yes** |") in text
    assert "| Does TwoSM+Full+A-MEx beat TwoSM+Full? | not asked | no, worse: -0.200" in text
    assert f"| {full} | 0.6250 | 0.8000 |" in text
    # a second earlier run gets its own table: the same differences change no answer
    assert ("Beside the coarse-curve run: the same questions, each answered by its own run's "
            "paired 95 % intervals; 0 of ") in text
    assert text.index("Beside the old world's run") < text.index("Beside the coarse-curve run")


def test_a_sitting_asks_only_the_questions_of_the_rows_it_trained():
    """params_study_real_mex.yaml trains +MEx and +A-MEx: no question names TwoSM or +Full
    (they are answered beside the first sitting), and the short answer has no empty clause."""
    params = load_params(os.path.join(REPO, "params_study_real_mex.yaml"))
    mex, amex = "twosm-full-mex-cityscapes", "twosm-full-amex-cityscapes"
    fill = "floor-fill-box-cityscapes"
    mean_mask = "floor-mean-mask-cityscapes"
    differences = _differences({(mex, fill): 0.1, (amex, fill): 0.02, (mex, mean_mask): 0.0,
                                (amex, mean_mask): -0.1})
    metrics = {row: {"tiou": 0.8, "hamm": 0.8, "test_boxes": 30}
               for row in (mex, amex, fill, "floor-mean-mask-cityscapes")}
    text = study_summary(metrics=metrics, differences=differences, eval_curves={},
                         held_back={}, params=params, wall_seconds=600, platform="test CPU",
                         folder="study_real_mex", params_file="params_study_real_mex.yaml")
    assert "not in this run" not in text
    assert "Does TwoSM+Full+MEx beat TwoSM+Full?" not in text
    assert f"**In short:** on tIOU, {mex} beats the fill-box floor." in text
    assert f"| Does {amex} beat the fill-box floor? | **cannot tell**" in text


def _scores(rows_and_values: dict, seeds=(0, 1)) -> pd.DataFrame:
    return pd.DataFrame([{"row": row, "dataset": "cityscapes", "seed": seed if values[1] else -1,
                          "image": f"img{box}", "label": 26,
                          "tiou": values[0][box] + (0.01 * seed if values[1] else 0),
                          "hamm": 0.5}
                         for row, values in rows_and_values.items()
                         for seed in (seeds if values[1] else (0,))
                         for box in range(len(values[0]))])


def test_reference_lines_pair_the_twosm_rows_with_the_colour_rows_on_the_same_boxes():
    fill = "floor-fill-box-cityscapes"
    floor = ([0.7, 0.8, 0.9], False)
    mine = _scores({fill: floor, **{row: ([0.9, 0.9, 0.9], True) for row in TWOSM_ROWS}})
    theirs = _scores({fill: floor, "pix2pixhd-cityscapes": ([0.2, 0.3, 0.4], True),
                      "mexgan-cityscapes": ([0.6, 0.7, 0.8], True),
                      "amexgan-cityscapes": ([0.5, 0.6, 0.7], True)})
    params = load_params(os.path.join(REPO, "params_study_twosm.yaml"))
    colour = load_params(os.path.join(REPO, "params_study.yaml"))
    lines = reference_lines(mine, {"name": "reports/study", "folder": "study",
                                   "scores": theirs, "params": colour},
                            study_rows(params, "cityscapes"), "cityscapes", "note", params)
    text = "\n".join(lines)
    # the caveat is in the table's header, and each row says how it gets its labels
    assert ("| row | labels | tIOU | − fill-box floor (not a comparison between the studies: "
            "the label paths differ, and the paper does not compare them) |") in text
    # mexgan: seeds 0 and 1 add 0 and 0.01: mean 0.705; − fill-box: 0.705 − 0.8 = −0.095
    assert ("| mexgan-cityscapes | decoded from Ỹ's colours (nearest palette colour) | 0.7050 "
            "| -0.0950 [") in text
    assert ("| twosm-full-cityscapes | predicted by its streams (no colour decode) | 0.9050 | "
            "+0.1050 [") in text
    # no TwoSM row minus a colour row (issue 34): the +0.2000 of 0.905 − 0.705 is not printed
    assert "+0.2000" not in text and "− mexgan-cityscapes" not in text
    assert "on the same 3 test boxes" in text
    other_boxes = theirs.replace({"image": {"img2": "img9"}})
    assert "not comparable" in "\n".join(reference_lines(
        mine, {"name": "x", "folder": "study", "scores": other_boxes, "params": colour},
        study_rows(params, "cityscapes"), "cityscapes", ""))


def test_reference_lines_answer_the_questions_across_two_sittings_on_common_seeds():
    """The real study's second sitting (+MEx, +A-MEx, seed 0) beside its first (TwoSM, +Full,
    seeds 0 and 1): MEx − Full is paired on seed 0 only."""
    fill = "floor-fill-box-cityscapes"
    floor = ([0.7, 0.8, 0.9], False)
    first = load_params(os.path.join(REPO, "params_study_real.yaml"))
    second = load_params(os.path.join(REPO, "params_study_real_mex.yaml"))
    mine = _scores({fill: floor, "twosm-full-mex-cityscapes": ([0.9, 0.9, 0.9], True),
                    "twosm-full-amex-cityscapes": ([0.6, 0.6, 0.6], True)}, seeds=(0,))
    theirs = _scores({fill: floor, "twosm-cityscapes": ([0.5, 0.5, 0.5], True),
                      "twosm-full-cityscapes": ([0.7, 0.75, 0.8], True)})
    text = "\n".join(reference_lines(
        mine, {"name": "reports/study_real", "folder": "study_real", "scores": theirs,
               "params": first}, study_rows(second, "cityscapes"), "cityscapes", "", second))
    # seed 0 of +Full (0.7, 0.75, 0.8), not its seed-1 scores (+0.01): 0.9 − 0.75 = +0.15
    assert "| Does TwoSM+Full+MEx beat TwoSM+Full? | 0 | **yes**: tiou " \
           "twosm-full-mex-cityscapes − twosm-full-cityscapes = +0.1500 [" in text
    assert "| Does TwoSM+Full+A-MEx beat TwoSM+Full? | 0 | **no, it is worse**: tiou" in text
    # TwoSM+Full − TwoSM: both in the first sitting, answered there, not here
    assert "Does TwoSM+Full beat TwoSM?" not in text
    # one label path: the header does not call the two sittings incomparable
    assert "| row | labels | tIOU | − fill-box floor |" in text
    assert "the label paths differ" not in text
    # colour rows as the reference: no question is answered across the label paths
    colour = load_params(os.path.join(REPO, "params_study.yaml"))
    assert "Does" not in "\n".join(reference_lines(
        mine, {"name": "reports/study", "folder": "study", "scores": theirs, "params": colour},
        study_rows(second, "cityscapes"), "cityscapes", "", second))


#---------------------------------------------------------------------------------------------
# tools/repro_parallel.py


class _Stage:
    def __init__(self, name):
        self.name = self.addressing = name


def test_training_stages_and_their_upstream_from_the_dag():
    graph = nx.DiGraph()
    prepare, translator = _Stage("prepare@cityscapes"), _Stage("translator@cityscapes")
    train_a, train_b = _Stage("train_mex@m-0"), _Stage("train_twosm@t-0")
    evaluate = _Stage("evaluate")
    graph.add_edges_from([(train_a, prepare), (train_b, prepare), (translator, prepare),
                          (evaluate, train_a), (evaluate, train_b), (evaluate, translator)])
    training, upstream = repro_parallel.training_stages(graph)
    assert {s.name for s in training} == {"train_mex@m-0", "train_twosm@t-0",
                                          "translator@cityscapes"}
    assert [s.name for s in upstream] == ["prepare@cityscapes"]
    # a training stage that needs another one's outputs never runs beside it
    fine_tune = _Stage("train_mex@fine-tuned-0")
    graph.add_edges_from([(fine_tune, train_a), (evaluate, fine_tune)])
    training, _ = repro_parallel.training_stages(graph)
    assert "train_mex@fine-tuned-0" not in {s.name for s in training}


def test_run_all_commits_each_finished_run_and_reports_failures(tmp_path, monkeypatch):
    committed = []
    monkeypatch.setattr(repro_parallel, "dvc", lambda *args, **kw: committed.append(args[-1]))
    commands = {"train_a": "echo a", "train_b": "echo b >&2; exit 3", "train_c": "echo c"}
    failed = repro_parallel.run_all(commands, jobs=1, log_dir=tmp_path / "logs")
    assert failed == ["train_b"]
    assert "train_a" in committed and "train_b" not in committed
    assert (tmp_path / "logs" / "train_b.log").read_text() == "b\n"
    # after a failure no new run starts (one at a time: train_c was still waiting)
    assert "train_c" not in committed
