"""loss.without_vgg_weights: with no VGG19 weights file, `drop` removes L_perc and its VGG19
forward, `standin` keeps the random-init stand-in; a weights file always wins; λ3 = 0 never
builds the network. Tiny 16x32 maps, CPU."""
import pytest
import torch
import yaml

from pipeline.config.loading import load_params
from pipeline.config.sections import ParamsError
from pipeline.models.losses import GanBatch, Pix2PixHDLoss
from pipeline.models.networks import VGG19Features
from pipeline.kinds.parts import build_vgg
from pipeline.training.runs import PERCEPTUAL_DROPPED
from tiny_project import REPO

C, H, W = 4, 16, 32


@pytest.fixture()
def no_hub_weights(tmp_path, monkeypatch):
    """A torch hub folder without vgg19-dcbb9e9d.pth, whatever this machine's cache holds."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def _params(tmp_path, **loss):
    with open(f"{REPO}/params.yaml") as f:
        raw = yaml.safe_load(f)
    raw["loss"].update(loss)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(str(path))


def _batch():
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(1, 1, H, W)
    mask[..., 4:10, 8:20] = 1
    return GanBatch(condition=torch.rand(1, C, H, W, generator=g),
                    target=torch.rand(1, 3, H, W, generator=g) * 2 - 1, mask=mask,
                    boxes=((8, 4, 20, 10),))


def test_drop_without_weights_builds_no_vgg(tmp_path, no_hub_weights):
    assert build_vgg(_params(tmp_path, without_vgg_weights="drop")) is None


def test_standin_without_weights_builds_the_random_vgg(tmp_path, no_hub_weights):
    vgg = build_vgg(_params(tmp_path, without_vgg_weights="standin"))
    assert isinstance(vgg, VGG19Features) and not vgg.pretrained
    assert vgg.source.startswith("STAND-IN")


def test_a_weights_file_wins_over_drop(tmp_path, no_hub_weights, vgg_weights):
    vgg = build_vgg(_params(tmp_path, without_vgg_weights="drop", vgg_weights_path=vgg_weights))
    assert isinstance(vgg, VGG19Features) and vgg.pretrained


def test_lambda_perc_zero_builds_no_vgg(tmp_path):
    params = _params(tmp_path, without_vgg_weights="standin")
    profile = params.row_profile()
    zero = type(profile)(**{**profile.__dict__, "lambda_perc": 0.0})
    assert build_vgg(params, zero) is None


def test_loss_without_vgg_has_no_perceptual_term_and_same_other_terms():
    torch.manual_seed(0)
    generated = torch.rand(1, 3, H, W) * 2 - 1
    with_vgg = Pix2PixHDLoss(C, VGG19Features(), ndf=4, n_layers=2, num_d=2,
                             lambda_feat=2.5, lambda_perc=3.0)
    without = Pix2PixHDLoss(C, None, ndf=4, n_layers=2, num_d=2, lambda_feat=2.5,
                            lambda_perc=3.0)
    without.discriminator.load_state_dict(with_vgg.discriminator.state_dict())
    batch = _batch()
    fused = batch.fuse(generated)
    terms_with = with_vgg.generator_terms(batch, generated, fused)
    terms_without = without.generator_terms(batch, generated, fused)
    assert set(terms_with) == {"G_adv", "G_feat", "G_perc"}
    assert terms_with["G_perc"] > 0
    assert set(terms_without) == {"G_adv", "G_feat"}
    for name in ("G_adv", "G_feat"):
        torch.testing.assert_close(terms_with[name], terms_without[name])


def test_unknown_mode_is_refused(tmp_path):
    with pytest.raises(ParamsError, match="loss.without_vgg_weights"):
        _params(tmp_path, without_vgg_weights="zero")


def test_dropped_label_says_so():
    assert PERCEPTUAL_DROPPED.startswith("DROPPED") and "without_vgg_weights" in PERCEPTUAL_DROPPED
