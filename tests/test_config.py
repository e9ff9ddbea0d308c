"""pipeline.config: params.yaml loads, and bad keys / types / values are rejected with a
ParamsError naming the key. Also the lr schedule of pipeline.training.trainer (train.epochs)."""
import copy
from pathlib import Path

import pytest
import yaml

from pipeline.config.loading import load_params
from pipeline.config.sections import ParamsError
from pipeline.config.validation import parse_params
from pipeline.training.trainer import learning_rate

PARAMS_YAML = Path(__file__).resolve().parent.parent / "params.yaml"


@pytest.fixture(scope="module")
def raw():
    with open(PARAMS_YAML) as f:
        return yaml.safe_load(f)


def _variant(raw, *path_and_value):
    """A deep copy of params.yaml with raw[path...] = value (path as dotted string)."""
    *path, value = path_and_value
    data = copy.deepcopy(raw)
    node = data
    keys = path[0].split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return data


def _error(data) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# The shipped file


def test_params_yaml_loads():
    params = load_params(str(PARAMS_YAML))
    assert isinstance(params.q, int) and not isinstance(params.q, bool)
    assert params.train.flip is True
    assert params.loss.vgg_layer_weights == (0.03125, 0.0625, 0.125, 0.25, 1.0)
    assert set(params.datasets) == {"cityscapes", "nyu", "helen"}


def test_row_q_reads_the_param_named_by_q_from(raw):
    params = parse_params(raw)
    assert params.row_q("mexgan-nyu") == raw["q_overrides"]["nyu"]
    assert params.row_q("mexgan-cityscapes") == raw["q"]
    assert params.row_q("mexgan-q0-cityscapes") == raw["q_sweep"]["q0"]


def test_row_q_follows_an_override(raw):
    params = parse_params(_variant(raw, "q_overrides.nyu", 8))
    assert params.row_q("mexgan-nyu") == 8
    assert params.row_q("mexgan-cityscapes") == raw["q"]


def test_rows_hold_both_groups(raw):
    params = parse_params(raw)
    assert params.row("pix2pixhd-helen").loss == "pix2pixhd"
    assert params.row("amexgan-cityscapes").loss == "amex"


def test_unknown_row_raises(raw):
    with pytest.raises(ParamsError, match="no-such-row"):
        parse_params(raw).row("no-such-row")


def test_missing_file_raises(tmp_path):
    with pytest.raises(ParamsError):
        load_params(str(tmp_path / "absent.yaml"))


def test_invalid_yaml_raises(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("q: [1, 2\n")
    with pytest.raises(ParamsError):
        load_params(str(path))


# ---------------------------------------------------------------------------------------------
# Unknown keys


def test_unknown_top_level_key(raw):
    data = copy.deepcopy(raw)
    data["qq"] = 3
    assert "qq" in _error(data)


def test_unknown_nested_key(raw):
    data = copy.deepcopy(raw)
    data["train"]["lrr"] = 0.1
    assert "train.lrr" in _error(data)


def test_missing_top_level_key(raw):
    data = copy.deepcopy(raw)
    del data["alpha"]
    assert "alpha" in _error(data)


def test_missing_required_dataset_key(raw):
    data = copy.deepcopy(raw)
    del data["datasets"]["nyu"]["height"]
    assert "datasets.nyu.height" in _error(data)


# ---------------------------------------------------------------------------------------------
# Wrong types


@pytest.mark.parametrize("key, value", [("q", "four"), ("q", 2.5), ("q", True),
                                        ("train.epochs", 1.5), ("train.flip", "yes"),
                                        ("train.flip", 1), ("train.lr", "fast"),
                                        ("data.source", 3), ("q_sweep.q0", "zero"),
                                        ("loss.vgg_layer_weights", "1,1,1,1,1")])
def test_wrong_type_names_the_key(raw, key, value):
    assert key in _error(_variant(raw, key, value))


# ---------------------------------------------------------------------------------------------
# Out-of-range values


@pytest.mark.parametrize("key, value", [
    ("q", -1),
    ("alpha", -2),
    ("beta", -1),
    ("q_overrides.nyu", -1),
    ("datasets.cityscapes.size_threshold", 1.5),
    ("datasets.cityscapes.size_threshold", 0),
    ("datasets.cityscapes.width", 60),          # not a multiple of 2**3
    ("datasets.helen.height", 0),
    ("profiles.paper.basic_loss_on", "bogus"),
    ("profiles.authors.discriminators", "all"),
    ("profiles.authors.vgg_input", "bgr"),
    ("profiles.paper.lambda_feat", -1.0),
    ("profile", "mine"),
    ("mex_rows.mexgan-cityscapes.profile", "mine"),
    ("data.box_rule", "pixels"),
    ("data.source", "bogus"),
    ("evaluate.fid_dims", 100),
    ("train.epochs", 0),
    ("train.device", "tpu"),
    ("train.mex_crop_canvas", -32),
    ("loss.lambda_mex", -1.0),
    ("loss.vgg_layer_weights", [1, 1, 1]),
])
def test_out_of_range_names_the_key(raw, key, value):
    assert key in _error(_variant(raw, key, value))


def test_width_multiple_follows_n_downsampling(raw):
    data = _variant(raw, "model.n_downsampling", 5)       # 64 % 32 == 0, 48 % 32 != 0
    assert "datasets.nyu.height" in _error(data)
    data = _variant(raw, "model.n_downsampling", 2)
    data["datasets"]["cityscapes"]["width"] = 60          # 60 % 4 == 0
    assert parse_params(data).datasets["cityscapes"].width == 60


def test_unknown_dataset_name(raw):
    data = copy.deepcopy(raw)
    data["datasets"]["kitti"] = copy.deepcopy(raw["datasets"]["nyu"])
    assert "datasets.kitti" in _error(data)


def test_q_override_for_an_unknown_dataset(raw):
    assert "q_overrides.kitti" in _error(_variant(raw, "q_overrides.kitti", 3))


def test_row_with_an_unknown_dataset(raw):
    assert "baselines.pix2pixhd-nyu.dataset" in _error(
        _variant(raw, "baselines.pix2pixhd-nyu.dataset", "kitti"))


def test_mex_row_with_a_baseline_loss(raw):
    assert "mex_rows.mexgan-nyu.loss" in _error(
        _variant(raw, "mex_rows.mexgan-nyu.loss", "pix2pixhd"))


def test_mex_row_q_from_a_missing_top_level_key(raw):
    assert "nothing" in _error(_variant(raw, "mex_rows.mexgan-nyu.q_from", "nothing"))


def test_mex_row_q_from_a_non_integer_param(raw):
    assert "mex_rows.mexgan-nyu.q_from" in _error(
        _variant(raw, "mex_rows.mexgan-nyu.q_from", "data.source"))


def test_mex_row_q_from_a_missing_nested_key(raw):
    message = _error(_variant(raw, "mex_rows.mexgan-nyu.q_from", "q_overrides.kitti"))
    assert "q_overrides.kitti" in message


def test_row_names_unique_across_groups(raw):
    data = copy.deepcopy(raw)
    data["mex_rows"]["pix2pixhd-nyu"] = {"dataset": "nyu", "loss": "mex", "q_from": "q"}
    assert "pix2pixhd-nyu" in _error(data)


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule (pipeline.training.trainer): constant for E//2 epochs, then linear to 0 at E


def test_learning_rate_four_epochs():
    assert [learning_rate(e, 4, 1.0) for e in range(4)] == [1.0, 1.0, 1.0, 0.5]


def test_learning_rate_paper_schedule():
    base = 2e-4
    assert learning_rate(0, 200, base) == base
    assert learning_rate(99, 200, base) == base
    assert learning_rate(100, 200, base) == base
    assert learning_rate(101, 200, base) == pytest.approx(base * 0.99)
    assert learning_rate(199, 200, base) == pytest.approx(base / 100)


def test_learning_rate_odd_epochs():
    # E = 5: E//2 = 2 constant epochs, then base·(5 − e)/3
    assert [learning_rate(e, 5, 3.0) for e in range(5)] == pytest.approx([3, 3, 3, 2, 1])


def test_learning_rate_single_epoch():
    assert learning_rate(0, 1, 1.0) == 1.0


# ---------------------------------------------------------------------------------------------
# Seeds, learning curves, TwoSM rows


@pytest.mark.parametrize("value, message", [
    ([], "not a non-empty list of integers"), ([0, 0], "distinct seeds"),
    ([0, "1"], "not a non-empty list of integers"), ([-1], "integers in [0, 2**32)"),
    (3, "not a non-empty list of integers")])
def test_bad_seeds_are_refused(raw, value, message):
    text = _error(_variant(raw, "seeds", value))
    assert text.startswith("seeds:") and message in text


@pytest.mark.parametrize("key, value", [("train.eval_every", -1), ("train.eval_boxes", 0),
                                        ("twosm.crop_size", 20), ("twosm.batch_size", 0),
                                        ("twosm.lambda_gan", -0.1)])
def test_bad_curve_and_twosm_settings_name_their_key(raw, key, value):
    assert _error(_variant(raw, key, value)).startswith(f"{key}:")


def test_twosm_rows_need_an_observation_and_a_listed_threshold(raw):
    assert _error(_variant(raw, "twosm_rows.twosm-cityscapes.observation", "crop")) \
        .startswith("twosm_rows.twosm-cityscapes.observation:")
    assert _error(_variant(raw, "twosm_rows.twosm-cityscapes.size_threshold", 0.005)) \
        .startswith("twosm_rows.twosm-cityscapes.size_threshold:")
    assert _error(_variant(raw, "mex_rows.mexgan-cityscapes.observation", "full")) \
        .startswith("mex_rows.mexgan-cityscapes.observation:")
    assert _error(_variant(raw, "datasets.cityscapes.box_list_threshold", 0.05)) \
        .startswith("datasets.cityscapes.box_list_threshold:")


def test_row_threshold_is_the_rows_own_or_the_datasets(raw):
    params = parse_params(raw)
    assert params.row_threshold("twosm-cityscapes") == 0.01
    assert params.row_threshold("mexgan-cityscapes") == raw["datasets"]["cityscapes"][
        "size_threshold"]
    assert params.row_q("twosm-full-mex-cityscapes") == raw["q"]
