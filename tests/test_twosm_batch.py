"""TwoSM at a batch its batch norm can use (twosm.batch_size, issue 34): a hong-build row trains
end to end at batch 4 (the last batch of an epoch may be smaller), its batch
norm learns running statistics from the batches, the saved generator reloads as the hong build
and predicts labels in eval mode (running statistics)."""
import os

import numpy as np
import torch

from pipeline.config.validation import parse_params
from pipeline.kinds import load_generator, train_row
from pipeline.models.model_files import GENERATOR_FILE
from pipeline.models.twosm_prediction import predict_labels
from tests.test_resume import prepare
from tests.tiny_project import tiny_params

ROW = "twosm-full-cityscapes"


def _raw(batch_size: int) -> dict:
    raw = tiny_params(data={"box_rule": "tight"},  # every one of the 6 maps has a box
                       baselines={}, mex_rows={}, q_sweep={},
                       twosm={"crop_size": 16, "build": "hong", "batch_size": batch_size},
                       twosm_rows={ROW: {"dataset": "cityscapes", "loss": "twosm",
                                         "observation": "full", "size_threshold": 0.01}})
    raw["datasets"]["cityscapes"].update(synthetic_train=12,  # several batches of 4
                                         synthetic_test=12)   # held-back curves: 2 test boxes
    return raw


def test_a_hong_twosm_row_trains_and_predicts_at_batch_4(tmp_path):
    raw = _raw(4)
    prepare(tmp_path, raw)
    params = parse_params(raw)
    data = str(tmp_path / "artifacts" / "data" / "cityscapes")
    summary = train_row(params, ROW, data, str(tmp_path / "model"), str(tmp_path / "live"),
                        progress=False)
    steps = summary["steps"]
    assert steps >= 2                                # the usable maps in batches of 4
    saved = torch.load(os.path.join(tmp_path, "model", GENERATOR_FILE), weights_only=False)
    tracked = [v for k, v in saved["generator"].items() if k.endswith("num_batches_tracked")]
    assert tracked and all(int(v) == steps for v in tracked)   # batch norm saw every batch
    means = [v for k, v in saved["generator"].items() if k.endswith("running_mean")]
    assert any(v.abs().sum() > 0 for v in means)
    generator = load_generator(str(tmp_path / "model"), torch.device("cpu"),
                               dataset="cityscapes")
    assert not generator.training
    from pipeline.data.datasets import read_split
    from pipeline.data.sets import get_spec
    from pipeline.data.inputs import EditBox
    spec, split = get_spec("cityscapes"), read_split(os.path.join(data, "train.h5"))
    edit = EditBox(split.names[0], 26, (4, 4, 14, 10))     # a car box on the first map
    labels = predict_labels(generator, generator.observation, split.labels[0],
                            split.instances[0], edit, spec, torch.device("cpu"))
    assert labels.shape == split.labels[0].shape
    assert np.isin(labels, np.arange(spec.num_labels)).all()


def test_a_rows_own_batch_wins_and_makes_it_a_variant_of_the_row_that_plays_its_role(tmp_path,
                                                                                     monkeypatch):
    """`twosm_rows.<row>.batch_size` (0: twosm.batch_size): the run batches by the row's own
    value and records it; that row plays no paper role (the report still finds one row per
    role) and the study pairs it with the row that does (issue 34: batch 1 beside batch 8)."""
    from pipeline import kinds
    from pipeline.config.sections import ParamsError
    from pipeline.evaluation.reports.differences import comparisons
    from pipeline.evaluation.reports.paper_rows import TWOSM_FULL, row_of, variants
    from pipeline.kinds import base
    import pytest
    raw = _raw(4)
    variant = "twosm-full-batch3-cityscapes"
    raw["twosm_rows"][variant] = {**raw["twosm_rows"][ROW], "batch_size": 3}
    prepare(tmp_path, raw)
    params = parse_params(raw)
    seen = {}
    monkeypatch.setattr(base, "train_run", lambda params, run, *args: seen.update(vars(run)) or {})
    data = str(tmp_path / "artifacts" / "data" / "cityscapes")
    for name in (ROW, variant):
        kinds.train_row(params, name, data, str(tmp_path / name), str(tmp_path / "live"),
                        progress=False)
        seen[name] = (seen["task"].batch_size, seen["extra"].get("batch_size"))
    assert seen[ROW] == (4, None) and seen[variant] == (3, 3)
    assert row_of(params, TWOSM_FULL, "cityscapes") == ROW
    assert variants(params, "cityscapes") == [(variant, ROW, "batch 3 against 4")]
    pairs = comparisons(params, [ROW, variant, "floor-fill-box-cityscapes"], ["cityscapes"])
    assert (variant, ROW, "cityscapes") in pairs
    assert (variant, "floor-fill-box-cityscapes", "cityscapes") in pairs
    raw["twosm_rows"][variant]["batch_size"] = -1
    with pytest.raises(ParamsError, match=rf"twosm_rows\.{variant}\.batch_size: -1"):
        parse_params(raw)
