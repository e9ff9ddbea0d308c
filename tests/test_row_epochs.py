"""A row's own training epochs (`<group>.<row>.epochs`, 0: train.epochs): a row whose curve
converges later trains longer on the same lr schedule; the run receives the row's value."""
import pytest

from pipeline import kinds
from pipeline.kinds import base
from pipeline.config.sections import ParamsError
from pipeline.config.validation import parse_params
from tiny_project import prepare_tiny_cityscapes, tiny_params

ROW = "pix2pixhd-cityscapes"


def _params(**row):
    return tiny_params(baselines={ROW: {"dataset": "cityscapes", "loss": "pix2pixhd", **row}},
                       mex_rows={}, twosm_rows={}, q_sweep={},
                       train={"epochs": 3})


def test_row_epochs_default_to_train_epochs_and_a_bad_value_names_its_key():
    assert parse_params(_params()).row_epochs(ROW) == 3
    assert parse_params(_params(epochs=7)).row_epochs(ROW) == 7
    with pytest.raises(ParamsError, match=rf"baselines\.{ROW}\.epochs: -2"):
        parse_params(_params(epochs=-2))


def test_the_training_run_gets_the_rows_own_epochs(tmp_path, monkeypatch):
    params = _params(epochs=5)
    data = prepare_tiny_cityscapes(params, str(tmp_path / "data"))
    seen = {}
    monkeypatch.setattr(base, "train_run", lambda params, run, *args: seen.update(vars(run)) or {})
    kinds.train_row(parse_params(params), ROW, data, str(tmp_path / "model"),
                   str(tmp_path / "live"), progress=False)
    assert seen["epochs"] == 5
