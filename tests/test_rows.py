"""pipeline.kinds.train_row builds the loss plug-ins of a row from its params: the row's own q
(q_from), λ4, α / β, and the settings of its profile (paper: q+1 discriminators, λ2 / λ3 of
profiles.paper, L_B on Ỹ, ImageNet-normalised VGG input; authors: range(q), L_B on Ŷ, raw VGG
input). Training itself is replaced by a recorder; the data is a tiny prepared project."""
import pytest
import torch.nn as nn

from pipeline import kinds
from pipeline.kinds import base, parts
from pipeline.config.validation import parse_params
from pipeline.models.losses import AMExLoss, MExLoss, Pix2PixHDLoss
from pipeline.data.preparation import prepare_dataset
from pipeline.data.synthetic import generate_split
from pipeline.models.twosm import TwoStreamLoss
from tiny_project import tiny_params

PROFILES = {"paper": {"lambda_feat": 1.3, "lambda_perc": 1.9, "basic_loss_on": "raw",
                      "discriminators": "q_plus_one", "vgg_input": "imagenet"},
            "authors": {"lambda_feat": 10.0, "lambda_perc": 10.0, "basic_loss_on": "fused",
                        "discriminators": "q", "vgg_input": "raw"}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    params = tiny_params()
    settings = params["datasets"]["cityscapes"]
    splits = {split: generate_split("cityscapes", split, settings[f"synthetic_{split}"],
                                    settings["height"], settings["width"],
                                    params["data"]["seed"])
              for split in ("train", "test")}
    out = tmp_path_factory.mktemp("rows") / "cityscapes"
    prepare_dataset("cityscapes", splits, str(out), width=settings["width"],
                    height=settings["height"], threshold=settings["size_threshold"],
                    box_rule="authors", source="synthetic",
                    list_threshold=settings["box_list_threshold"])
    return str(out)


class FakeVGG(nn.Module):
    """Records how the row asked for its VGG19 (no 80 MB network needed here)."""
    pretrained, source = False, "fake"

    def __init__(self, weights_path="", vgg_input="imagenet"):
        super().__init__()
        self.vgg_input = vgg_input


def plugins(monkeypatch, data_dir, tmp_path, row, profile="paper", row_profile=None, **extra):
    """The loss plug-ins train_row hands to the trainer for `row`."""
    raw = tiny_params(q=3, alpha=2, beta=1, profile=profile, profiles=PROFILES,
                      loss={"lambda_mex": 0.7, "lambda_adv": 0.8}, **extra)
    if row_profile:
        for group in ("mex_rows", "baselines", "twosm_rows"):
            if row in raw[group]:
                raw[group][row] = {**raw[group][row], "profile": row_profile}
    seen = {}

    def record(params, run, out_dir, live_dir, progress):
        seen.update(vars(run))
        return {}

    monkeypatch.setattr(base, "train_run", record)
    monkeypatch.setattr(parts, "VGG19Features", FakeVGG)
    kinds.train_row(parse_params(raw), row, data_dir, str(tmp_path / "m"), str(tmp_path / "l"),
                    progress=False)
    return seen["losses"], seen["extra"]


def expansion(losses):
    found = [p for p in losses if isinstance(p, (MExLoss, AMExLoss))]
    assert len(found) <= 1
    return found[0] if found else None


@pytest.mark.parametrize("row, q, count", [("mexgan-q8-cityscapes", 8, 9),
                                           ("mexgan-q0-cityscapes", 0, 1),
                                           ("mexgan-cityscapes", 3, 4)])
def test_mex_row_gets_q_plus_one_discriminators_of_its_own_q(monkeypatch, data_dir, tmp_path,
                                                             row, q, count):
    losses, extra = plugins(monkeypatch, data_dir, tmp_path, row)
    mex = expansion(losses)
    assert isinstance(mex, MExLoss) and len(mex.discriminators) == count
    assert (mex.top_level, mex.alpha, mex.beta, mex.lambda_mex) == (q, 2, 1, 0.7)
    assert extra["q"] == q and extra["profile"]["name"] == "paper"


def test_paper_profile_sets_the_basic_loss(monkeypatch, data_dir, tmp_path):
    losses, _ = plugins(monkeypatch, data_dir, tmp_path, "pix2pixhd-cityscapes")
    (basic,) = losses
    assert isinstance(basic, Pix2PixHDLoss)
    assert (basic.lambda_adv, basic.lambda_feat, basic.lambda_perc, basic.on) == \
        (0.8, 1.3, 1.9, "raw")
    assert basic.vgg.vgg_input == "imagenet"


@pytest.mark.parametrize("how", ["top-level", "row"])
def test_authors_profile_sets_every_switch(monkeypatch, data_dir, tmp_path, how):
    kwargs = {"profile": "authors"} if how == "top-level" else {"row_profile": "authors"}
    losses, extra = plugins(monkeypatch, data_dir, tmp_path, "mexgan-q8-cityscapes", **kwargs)
    basic, mex = losses
    assert (basic.lambda_feat, basic.lambda_perc, basic.on) == (10.0, 10.0, "fused")
    assert basic.vgg.vgg_input == "raw"
    assert len(mex.discriminators) == 8 and mex.top_level == 7        # range(8): j = 0..7
    assert extra["q"] == 8 and extra["profile"]["name"] == "authors"


def test_a_row_profile_leaves_the_other_rows_alone(monkeypatch, data_dir, tmp_path):
    losses, _ = plugins(monkeypatch, data_dir, tmp_path, "mexgan-cityscapes",
                        mex_rows={"mexgan-cityscapes": {"dataset": "cityscapes", "loss": "mex",
                                                        "q_from": "q"},
                                  "other": {"dataset": "cityscapes", "loss": "mex",
                                            "q_from": "q", "profile": "authors"}})
    assert len(expansion(losses).discriminators) == 4


def test_authors_q_zero_has_no_expansion_term(monkeypatch, data_dir, tmp_path):
    losses, _ = plugins(monkeypatch, data_dir, tmp_path, "mexgan-q0-cityscapes",
                        profile="authors")
    assert [type(p) for p in losses] == [Pix2PixHDLoss]


@pytest.mark.parametrize("profile, top", [("paper", 3), ("authors", 2)])
def test_amex_row_gets_one_discriminator_and_its_masks(monkeypatch, data_dir, tmp_path,
                                                       profile, top):
    losses, _ = plugins(monkeypatch, data_dir, tmp_path, "amexgan-cityscapes", profile=profile)
    amex = expansion(losses)
    assert isinstance(amex, AMExLoss) and amex.top_level == top and amex.lambda_mex == 0.7
    assert sum(isinstance(m, nn.Conv2d) and m.in_channels == 37 + 3 for m in amex.modules()) == 1


@pytest.mark.parametrize("profile, count", [("paper", 4), ("authors", 3)])
def test_twosm_mex_row_uses_its_q_on_the_context_stream(monkeypatch, data_dir, tmp_path,
                                                        profile, count):
    losses, _ = plugins(monkeypatch, data_dir, tmp_path, "twosm-full-mex-cityscapes",
                        profile=profile)
    assert isinstance(losses[0], TwoStreamLoss)
    mex = expansion(losses)
    assert len(mex.discriminators) == count and mex.lambda_mex == 0.7


@pytest.mark.parametrize("row", ["mexgan-cityscapes", "twosm-full-mex-cityscapes"])
def test_mex_rows_take_the_crop_canvas_of_train_params(monkeypatch, data_dir, tmp_path, row):
    raw_train = dict(tiny_params()["train"], mex_crop_canvas=24)
    losses, _ = plugins(monkeypatch, data_dir, tmp_path, row, train=raw_train)
    mex = expansion(losses)
    assert mex.crop_canvas == 24 and mex.canvas_network is not None
    losses, _ = plugins(monkeypatch, data_dir, tmp_path, row)
    assert expansion(losses).crop_canvas == 0 and expansion(losses).canvas_network is None
