"""TwoSM (Table 2), the simplified build: window geometry by hand, each loss term reaching its
stream, the expansion plug-ins on the context stream, the paste-back of the prediction, and a
bit-exact resume of both builds (Hong et al.'s switches: tests/test_twosm_hong.py)."""
import numpy as np
import pytest
import torch

from pipeline.data.inputs import EditBox
from pipeline.models.twosm import TwoStreamGenerator, TwoStreamLoss
from pipeline.models.twosm_prediction import predict_labels
from pipeline.models.twosm_views import (Observation, box_in_window, local_window, resize_nearest,
                                         twosm_batch)
from pipeline.data.sets import get_spec


def test_local_window_is_a_square_of_twice_the_longer_side_centred_on_the_box():
    # box 10 wide x 6 high at (40, 20) in a 128x64 map: side 20, centred -> (35, 13, 55, 33)
    assert local_window((40, 20, 50, 26), 128, 64) == (35, 13, 55, 33)


def test_local_window_near_a_border_is_shifted_inside_the_image():
    # side 16 around a box at the top-left corner: the window starts at 0
    assert local_window((0, 1, 8, 5), 64, 32) == (0, 0, 16, 16)
    # bottom-right corner
    assert local_window((58, 28, 64, 32), 64, 32) == (52, 20, 64, 32)


def test_a_box_larger_than_half_the_image_gets_the_short_side_widened_to_the_box():
    # box 40 x 10 in 64x32: 2 x 40 = 80 is capped at min(W, H) = 32 < 40: window 40 x 32
    assert local_window((10, 5, 50, 15), 64, 32) == (10, 0, 50, 32)


def test_training_jitter_keeps_the_box_inside_the_window_and_the_window_inside_the_image():
    box = (20, 10, 26, 14)                     # side 12
    for u, v in ((0, 0), (1, 1), (0.5, 0.3)):
        x1, y1, x2, y2 = local_window(box, 64, 32, offset=(u, v))
        assert x2 - x1 == 12 and y2 - y1 == 12
        assert x1 <= 20 and x2 >= 26 and y1 <= 10 and y2 >= 14
        assert 0 <= x1 and x2 <= 64 and 0 <= y1 and y2 <= 32
    assert local_window(box, 64, 32, offset=(0, 0)) == (14, 2, 26, 14)
    assert local_window(box, 64, 32, offset=(1, 1)) == (20, 10, 32, 22)


def test_box_in_window_scales_outward_and_is_never_empty():
    assert box_in_window((40, 20, 50, 26), (35, 13, 55, 33), 32) == (8, 11, 24, 21)
    assert box_in_window((10, 10, 11, 11), (0, 0, 64, 64), 16) == (2, 2, 3, 3)


def test_resize_nearest_picks_source_pixels():
    array = np.arange(16).reshape(4, 4)
    assert resize_nearest(array, (0, 0, 4, 4), 2).tolist() == [[0, 2], [8, 10]]
    assert resize_nearest(array, (2, 2, 4, 4), 4).tolist() == [[10, 10, 11, 11]] * 2 + \
        [[14, 14, 15, 15]] * 2


SPEC = get_spec("cityscapes")


def tiny_map():
    labels = np.full((16, 32), 7)
    instances = np.full((16, 32), 7)
    labels[6:12, 10:18], instances[6:12, 10:18] = 26, 26001
    return labels, instances


class Split:
    def __init__(self):
        labels, instances = tiny_map()
        self.labels, self.instances = labels[None], instances[None]


@pytest.mark.parametrize("kind", ["local", "full"])
def test_each_loss_term_reaches_its_own_stream(kind):
    torch.manual_seed(0)
    observation = Observation(kind, 16)
    batch = twosm_batch(Split(), SPEC, observation, [0], [EditBox("a", 26, (10, 6, 18, 12))],
                        [False], [None], "cpu")
    channels = batch.condition.shape[1]
    generator = TwoStreamGenerator(channels, SPEC.num_labels, ngf=4, n_downsampling=2,
                                   n_blocks=1)
    loss = TwoStreamLoss(channels, SPEC.num_labels, ndf=4, n_layers=2, num_d=1, lambda_gan=0.1)
    generated = generator(batch.condition)
    assert generated.shape == (1, 1 + SPEC.num_labels) + tuple(batch.condition.shape[-2:])
    terms = loss.generator_terms(batch, generated, batch.fuse(generated))
    assert set(terms) == {"G_mask", "G_context", "G_adv"}
    for name, stream, other in (("G_mask", generator.mask_stream, generator.context_stream),
                                ("G_context", generator.context_stream, generator.mask_stream)):
        generator.zero_grad()
        terms[name].backward(retain_graph=True)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in stream.parameters())
        assert all(p.grad is None or p.grad.abs().sum() == 0 for p in other.parameters()), name
    # the object mask target is the car inside the box, the label target the map
    assert batch.target[:, 0].sum() > 0 and torch.equal(
        batch.target[:, 1:].sum(1), torch.ones_like(batch.target[:, 0]))


def test_lambda_gan_scales_only_the_adversarial_term():
    torch.manual_seed(0)
    observation = Observation("full", 16)
    batch = twosm_batch(Split(), SPEC, observation, [0], [EditBox("a", 26, (10, 6, 18, 12))],
                        [False], [None], "cpu")
    channels = batch.condition.shape[1]
    generator = TwoStreamGenerator(channels, SPEC.num_labels, ngf=4, n_downsampling=2,
                                   n_blocks=1)
    generated = generator(batch.condition)
    torch.manual_seed(1)
    a = TwoStreamLoss(channels, SPEC.num_labels, ndf=4, n_layers=2, num_d=1, lambda_gan=0.1)
    torch.manual_seed(1)
    b = TwoStreamLoss(channels, SPEC.num_labels, ndf=4, n_layers=2, num_d=1, lambda_gan=0.3)
    ta, tb = a.generator_terms(batch, generated, generated), b.generator_terms(batch, generated,
                                                                                generated)
    assert torch.allclose(tb["G_adv"], 3 * ta["G_adv"])
    assert torch.equal(ta["G_context"], tb["G_context"])


def test_prediction_is_pasted_into_the_box_only():
    labels, instances = tiny_map()

    class AlwaysCar(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(x.shape[0], 1 + SPEC.num_labels, *x.shape[-2:])
            out[:, 1 + 26] = 1.0
            return out

    for kind in ("local", "full"):
        predicted = predict_labels(AlwaysCar(), Observation(kind, 16), labels, instances,
                                   EditBox("a", 26, (8, 4, 20, 14)), SPEC, "cpu")
        assert (predicted[4:14, 8:20] == 26).all()
        outside = np.ones(labels.shape, dtype=bool)
        outside[4:14, 8:20] = False
        assert (predicted[outside] == labels[outside]).all()


def test_the_expansion_plugin_on_the_context_stream_gets_the_rows_q_and_the_label_channels():
    from pipeline.config.validation import parse_params
    from pipeline.models.losses import AMExLoss, MExLoss
    from pipeline.kinds import TWOSM
    from tests.tiny_project import tiny_params
    raw = tiny_params(q=3)
    params = parse_params(raw)
    generator, plugins = TWOSM.networks(params, params.twosm_rows["twosm-full-mex-cityscapes"])
    assert isinstance(plugins[1], MExLoss) and plugins[1].top_level == 3
    assert len(plugins[1].discriminators) == 4
    first_conv = plugins[1].discriminators[0].blocks[0][0]
    assert first_conv.in_channels == SPEC.num_labels + 2 + SPEC.num_labels
    assert plugins[1].channels == slice(1, None)
    assert generator.observation.kind == "full"
    _, plugins = TWOSM.networks(params, params.twosm_rows["twosm-full-amex-cityscapes"])
    assert isinstance(plugins[1], AMExLoss) and plugins[1].top_level == 3
    _, plugins = TWOSM.networks(params, params.twosm_rows["twosm-cityscapes"])
    assert len(plugins) == 1


def test_channel_selection_is_the_same_mex_loss_on_the_selected_channels():
    from pipeline.data.inputs import GanBatch
    from pipeline.models.losses import MExLoss
    torch.manual_seed(0)
    condition, target = torch.rand(2, 5, 16, 16), torch.rand(2, 4, 16, 16)
    batch = GanBatch(condition=condition, target=target, mask=torch.ones(2, 1, 16, 16),
                     boxes=((2, 2, 8, 9), (5, 4, 12, 10)))
    fused = torch.rand(2, 4, 16, 16)
    torch.manual_seed(1)
    selected = MExLoss(5, top_level=2, alpha=2, beta=1, ndf=4, n_layers=2, lambda_mex=1.5,
                       image_channels=3, channels=slice(1, None))
    torch.manual_seed(1)
    plain = MExLoss(5, top_level=2, alpha=2, beta=1, ndf=4, n_layers=2, lambda_mex=1.5,
                    image_channels=3)
    plain_batch = GanBatch(condition=condition, target=target[:, 1:], mask=batch.mask,
                           boxes=batch.boxes)
    a = selected.discriminator_terms(batch, None, fused)
    b = plain.discriminator_terms(plain_batch, None, fused[:, 1:])
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert torch.equal(selected.generator_terms(batch, None, fused)["G_mex"],
                       plain.generator_terms(plain_batch, None, fused[:, 1:])["G_mex"])


@pytest.mark.parametrize("build", ["simplified", "hong"])
def test_a_crashed_twosm_run_resumes_bit_exact(tmp_path, build):
    """TwoSM rows go through the one trainer: a run that dies mid-epoch resumes from its
    checkpoint and ends with the generator of an uninterrupted run (the task's order, flips,
    window jitter and -- Hong et al.'s build -- enlarged and background boxes are a function of
    (seed, epoch); batch norm's running statistics are in the checkpoint)."""
    import os
    import shutil
    from pipeline.models import twosm_views
    from pipeline.config.validation import parse_params
    from pipeline.models.model_files import GENERATOR_FILE
    from pipeline.kinds import train_row
    from tests.test_resume import prepare
    from tests.tiny_project import tiny_params
    raw = tiny_params(train={"epochs": 2, "checkpoint_every": 2, "eval_every": 4},
                      data={"box_rule": "tight"},  # all 6 images have a box: epoch 1 has 6 steps
                      baselines={}, mex_rows={}, q_sweep={},
                      twosm={"crop_size": 16, "build": build},
                      twosm_rows={"twosm-full-mex-cityscapes": {
                          "dataset": "cityscapes", "loss": "mex", "q_from": "q",
                          "observation": "local", "size_threshold": 0.01}})
    prepare(tmp_path, raw)
    params = parse_params(raw)
    data = str(tmp_path / "artifacts" / "data" / "cityscapes")

    def run(name):
        return train_row(params, "twosm-full-mex-cityscapes", data, str(tmp_path / name),
                         str(tmp_path / f"{name}-live"), progress=False)

    run("reference")
    original = twosm_views.TwoStreamTask.epoch

    def dies_in_the_second_epoch(self, epoch, device):
        for index, batch in enumerate(original(self, epoch, device)):
            if epoch == 1 and index == 3:
                raise KeyboardInterrupt
            yield batch

    twosm_views.TwoStreamTask.epoch = dies_in_the_second_epoch
    try:
        with pytest.raises(KeyboardInterrupt):
            run("crashed")
    finally:
        twosm_views.TwoStreamTask.epoch = original
    summary = run("crashed")
    assert summary["resumes"] == 1
    final = torch.load(os.path.join(tmp_path, "crashed", GENERATOR_FILE), weights_only=False)
    expected = torch.load(os.path.join(tmp_path, "reference", GENERATOR_FILE),
                          weights_only=False)
    for key, value in expected["generator"].items():
        assert torch.equal(final["generator"][key], value), key
    with open(tmp_path / "crashed-live/plots/metrics/eval/tiou.tsv") as f:
        crashed = f.read()
    with open(tmp_path / "reference-live/plots/metrics/eval/tiou.tsv") as f:
        assert crashed == f.read()
    shutil.rmtree(tmp_path / "artifacts")
