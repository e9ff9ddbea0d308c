"""TwoSM as Hong et al. built it (params twosm.build: hong, docs/twosm.md): each switch pinned
on hand-made tiny maps -- the context NLL only inside the enlarged box, the discriminator on the
(gated) mask stream, the labels painted from the mask, the encoder skips and batch norm, the
background boxes -- and the params that select them."""
import math

import numpy as np
import pytest
import torch

from pipeline.config.sections import ParamsError, TWOSM_BUILDS
from pipeline.config.validation import parse_params
from pipeline.data.sets import get_spec
from pipeline.data.inputs import EditBox
from pipeline.models.twosm import TwoStreamGenerator, TwoStreamLoss
from pipeline.models.twosm_prediction import predict_label_maps, predict_labels
from pipeline.models.twosm_views import (Observation, TwoStreamBatch, TwoStreamTask, enlarged_box,
                                         twosm_batch)
from tests.tiny_project import tiny_params

SPEC = get_spec("cityscapes")

#---------------------------------------------------------------------------------------------
# Params


def test_the_hong_build_sets_every_switch_and_a_given_switch_wins():
    params = parse_params(tiny_params(twosm={"build": "hong"}))
    assert (params.twosm.context_loss, params.twosm.discriminator, params.twosm.mask_gate,
            params.twosm.labels, params.twosm.encoder_skips, params.twosm.norm,
            params.twosm.background_boxes) == \
        ("enlarged_box", "mask", True, "painted_mask", True, "batch", 0.3)
    ablated = parse_params(tiny_params(twosm={"build": "hong", "context_loss": "view",
                                              "background_boxes": 0.1}))
    assert ablated.twosm.context_loss == "view" and ablated.twosm.background_boxes == 0.1
    assert ablated.twosm.norm == "batch"
    default = parse_params(tiny_params())
    assert default.twosm.build == "simplified"
    assert {key: getattr(default.twosm, key) for key in TWOSM_BUILDS["simplified"]} == \
        TWOSM_BUILDS["simplified"]


@pytest.mark.parametrize("key, value", [
    ("build", "paper"), ("build", 3), ("context_loss", "box"), ("discriminator", "both"),
    ("labels", "argmax"), ("norm", "group"), ("mask_gate", "yes"), ("encoder_skips", 1),
    ("background_boxes", 1.0), ("background_boxes", -0.1), ("background_boxes", "0.3")])
def test_a_bad_switch_is_one_error_line_naming_its_key(key, value):
    with pytest.raises(ParamsError) as info:
        parse_params(tiny_params(twosm={key: value}))
    message = str(info.value)
    assert message.startswith(f"twosm.{key}:") and "\n" not in message


def test_build_twosm_wires_the_switches_and_keeps_mex_on_the_context_stream():
    from torch import nn
    from pipeline.kinds import TWOSM
    raw = tiny_params(twosm={"build": "hong", "crop_size": 16})
    params = parse_params(raw)
    generator, plugins = TWOSM.networks(params, params.twosm_rows["twosm-full-mex-cityscapes"])
    assert generator.settings() == ("batch", True, "painted_mask")
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in generator.modules())
    assert (plugins[0].context_loss, plugins[0].scores, plugins[0].mask_gate) == \
        ("enlarged_box", "mask", True)
    assert generator.observation.enlarged_boxes and generator.observation.background_boxes == 0.3
    assert plugins[1].channels == slice(1, None)      # MEx scores the context stream
    params = parse_params(tiny_params())
    generator, plugins = TWOSM.networks(params, params.twosm_rows["twosm-full-mex-cityscapes"])
    assert generator.settings() == ("instance", False, "context_argmax")
    assert (plugins[0].context_loss, plugins[0].scores, plugins[0].mask_gate) == \
        ("view", "context", False)
    assert not generator.observation.enlarged_boxes
    assert generator.observation.background_boxes == 0


#---------------------------------------------------------------------------------------------
# 1. The context loss over the enlarged box


def test_enlarged_box_scales_about_the_centre_outward_and_clips_to_the_view():
    # 8 x 6 box, ratio 1.5: 12 x 9 about (14, 9) -> x 8..20, y 4.5..13.5 -> 4..14
    assert enlarged_box((10, 6, 18, 12), 1.5, 32, 16) == (8, 4, 20, 14)
    # 4 x 4 at the corner, ratio 1.5: -1..5 clipped to 0
    assert enlarged_box((0, 0, 4, 4), 1.5, 32, 16) == (0, 0, 5, 5)
    assert enlarged_box((28, 12, 32, 16), 1.2, 32, 16) == (27, 11, 32, 16)


LABELS = 3          # a tiny label set for the hand-made loss batches
SIDE = 16
BOX, ENLARGED = (5, 5, 7, 7), (4, 4, 8, 8)


def hand_batch():
    """One 16 x 16 sample: true label 1 everywhere, the object = the 2 x 2 box (5, 5, 7, 7),
    the enlarged box (4, 4, 8, 8) (16 pixels); condition: 2 channels of 0.5."""
    target = torch.zeros(1, 1 + LABELS, SIDE, SIDE)
    target[:, 2] = 1                                    # label 1 (channel 1 + 1)
    target[:, 0, 5:7, 5:7] = 1
    mask = torch.zeros(1, 1, SIDE, SIDE)
    mask[..., 5:7, 5:7] = 1
    return TwoStreamBatch(condition=torch.full((1, 2, SIDE, SIDE), 0.5), target=target,
                          mask=mask, boxes=(BOX,), enlarged_boxes=(ENLARGED,))


def hand_output():
    """Mask stream 0.8 everywhere; context p(label 1) = 0.5 in the enlarged box, 0.1 outside."""
    generated = torch.zeros(1, 1 + LABELS, SIDE, SIDE)
    generated[:, 0] = 0.8
    generated[:, 2] = 0.1
    generated[:, 2, 4:8, 4:8] = 0.5
    generated[:, 1] = (1 - generated[:, 2]) / 2
    generated[:, 3] = (1 - generated[:, 2]) / 2
    return generated


def tiny_loss(**switches):
    torch.manual_seed(0)
    return TwoStreamLoss(2, LABELS, ndf=4, n_layers=2, num_d=1, lambda_gan=0.3,
                         lambda_mask=2.0, lambda_context=0.5, **switches)


def test_the_context_nll_is_the_mean_over_the_enlarged_box_only():
    batch, generated = hand_batch(), hand_output()
    inside = tiny_loss(context_loss="enlarged_box").generator_terms(batch, generated, generated)
    assert inside["G_context"].item() == pytest.approx(0.5 * math.log(2), rel=1e-6)
    view = tiny_loss().generator_terms(batch, generated, generated)
    assert view["G_context"].item() == pytest.approx(
        0.5 * (16 * math.log(2) + 240 * math.log(10)) / 256, rel=1e-6)


def test_a_pixel_outside_the_enlarged_box_leaves_the_context_loss_unchanged():
    loss, batch = tiny_loss(context_loss="enlarged_box"), hand_batch()

    def context_term(row, col):
        generated = hand_output()
        generated[:, 1:, row, col] = torch.tensor([0.9, 0.05, 0.05])
        return loss.generator_terms(batch, generated, generated)["G_context"].item()

    reference = context_term(0, 0)
    for row, col in ((0, 15), (3, 4), (8, 8), (15, 0)):   # outside (4, 4, 8, 8)
        assert context_term(row, col) == reference
    for row, col in ((4, 4), (7, 7), (5, 6)):             # inside; (4, 4) is outside the box
        assert context_term(row, col) != reference


def test_the_mask_gate_zeroes_the_mask_stream_outside_the_enlarged_box_in_the_bce():
    batch, generated = hand_batch(), hand_output()
    gated = tiny_loss(mask_gate=True).generator_terms(batch, generated, generated)
    # inside the enlarged box: 4 object pixels at 0.8, 12 background pixels at 0.8; outside:
    # 0 (clamped to 1e-7) against 0, about nothing; the mean over all 256 pixels, x 2
    expected = 2 * (4 * -math.log(0.8) + 12 * -math.log(0.2)) / 256
    assert gated["G_mask"].item() == pytest.approx(expected, abs=1e-6)
    plain = tiny_loss().generator_terms(batch, generated, generated)
    assert plain["G_mask"].item() == pytest.approx(
        2 * (4 * -math.log(0.8) + 252 * -math.log(0.2)) / 256, rel=1e-6)


#---------------------------------------------------------------------------------------------
# 2. The discriminator on the mask stream, gated by the enlarged box


def recorded_inputs(loss):
    seen = []
    loss.discriminator.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    return seen


def test_a_mask_stream_discriminator_sees_the_gated_mask_and_condition():
    batch, generated = hand_batch(), hand_output()
    loss = tiny_loss(discriminator="mask", mask_gate=True)
    assert loss.discriminator.scales[0].blocks[0][0].in_channels == 2 + 1
    seen = recorded_inputs(loss)
    loss.discriminator_terms(batch, generated, generated)
    gate = torch.zeros(1, 1, SIDE, SIDE)
    gate[..., 4:8, 4:8] = 1
    fake = torch.cat([batch.condition * gate, generated[:, :1] * gate], 1)
    real = torch.cat([batch.condition * gate, batch.target[:, :1] * gate], 1)
    assert torch.equal(seen[0], torch.cat([fake, real]))
    ungated = tiny_loss(discriminator="mask")
    seen = recorded_inputs(ungated)
    ungated.discriminator_terms(batch, generated, generated)
    assert torch.equal(seen[0][:1], torch.cat([batch.condition, generated[:, :1]], 1))


@pytest.mark.parametrize("stream", ["mask", "context"])
def test_the_adversarial_gradient_reaches_only_the_scored_stream(stream):
    batch = hand_batch()
    generated = hand_output().requires_grad_(True)
    loss = tiny_loss(discriminator=stream, mask_gate=stream == "mask")
    loss.generator_terms(batch, generated, generated)["G_adv"].backward()
    mask_grad, context_grad = generated.grad[:, 0], generated.grad[:, 1:]
    if stream == "mask":
        assert mask_grad[:, 4:8, 4:8].abs().sum() > 0 and context_grad.abs().sum() == 0
        outside = torch.ones(SIDE, SIDE, dtype=torch.bool)
        outside[4:8, 4:8] = False
        assert mask_grad[:, outside].abs().sum() == 0       # the gate
    else:
        assert context_grad.abs().sum() > 0 and mask_grad.abs().sum() == 0


def test_a_loss_that_needs_enlarged_boxes_refuses_a_batch_without_them():
    batch = hand_batch()
    bare = TwoStreamBatch(condition=batch.condition, target=batch.target, mask=batch.mask,
                          boxes=batch.boxes)
    with pytest.raises(ValueError, match="enlarged boxes"):
        tiny_loss(context_loss="enlarged_box").generator_terms(bare, hand_output(),
                                                                hand_output())


#---------------------------------------------------------------------------------------------
# 3. The labels painted from the mask stream


def tiny_map():
    labels = np.full((16, 32), 7)
    instances = np.full((16, 32), 7)
    labels[6:12, 10:18], instances[6:12, 10:18] = 26, 26001
    return labels, instances


class HandMade(torch.nn.Module):
    """Mask stream 1 in view columns < 14, 0 from 14 on; the context stream says 'sidewalk' (8)
    everywhere."""

    def __init__(self, label_rule=None):
        super().__init__()
        if label_rule:
            self.label_rule = label_rule

    def forward(self, x):
        out = torch.zeros(x.shape[0], 1 + SPEC.num_labels, *x.shape[-2:])
        out[:, 0, :, :14] = 1.0
        out[:, 1 + 8] = 1.0
        return out


def test_the_painted_labels_are_lt_where_the_mask_is_above_half_and_the_context_elsewhere():
    labels, instances = tiny_map()
    edit = EditBox("a", 24, (8, 4, 20, 14))                # a person over the car
    painted, context = predict_label_maps(HandMade(), Observation("full", 16), labels,
                                          instances, edit, SPEC, "cpu")
    expected = labels.copy()
    expected[4:14, 8:14] = 24
    expected[4:14, 14:20] = 8
    assert np.array_equal(painted, expected)
    expected[4:14, 8:14] = 8
    assert np.array_equal(context, expected)
    rule = predict_labels(HandMade("painted_mask"), Observation("full", 16), labels, instances,
                          edit, SPEC, "cpu")
    assert np.array_equal(rule, painted)
    assert np.array_equal(predict_labels(HandMade(), Observation("full", 16), labels, instances,
                                         edit, SPEC, "cpu"), context)


def test_a_background_box_keeps_the_context_argmax():
    labels, instances = tiny_map()
    edit = EditBox("a", SPEC.num_labels - 1, (8, 4, 20, 14))
    painted, context = predict_label_maps(HandMade(), Observation("full", 16), labels,
                                          instances, edit, SPEC, "cpu")
    assert np.array_equal(painted, context) and (painted[4:14, 8:20] == 8).all()


def test_local_painting_resizes_the_mask_back_to_the_window():
    labels, instances = tiny_map()

    class LeftHalf(HandMade):            # mask 1 in the left half of the 16 x 16 view
        def forward(self, x):
            out = super().forward(x)
            out[:, 0] = 0
            out[:, 0, :, :8] = 1
            return out

    # box 8 x 6 at (12, 5): window = side 16 centred -> (8, 0, 24, 16), left half x < 16
    edit = EditBox("a", 24, (12, 5, 20, 11))
    painted, _ = predict_label_maps(LeftHalf(), Observation("local", 16), labels, instances,
                                    edit, SPEC, "cpu")
    assert (painted[5:11, 12:16] == 24).all() and (painted[5:11, 16:20] == 8).all()


#---------------------------------------------------------------------------------------------
# 4. Encoder skips and batch norm


def test_skips_and_batch_norm_are_there_only_when_selected():
    from torch import nn
    torch.manual_seed(0)
    plain = TwoStreamGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=1)
    hong = TwoStreamGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=1, norm="batch",
                              encoder_skips=True, label_rule="painted_mask")
    count = sum(isinstance(m, nn.InstanceNorm2d) for m in plain.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in hong.modules()) == count
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in hong.modules())
    # widths: bottleneck 16 (4 x 2**2); the context stream's second up-sampling takes its 8
    # channels plus the encoder's 8 at 8 x 8; the mask stream has no skips
    convs = [m.in_channels for m in hong.context_stream if isinstance(m, nn.ConvTranspose2d)]
    assert convs == [16, 16]
    assert [m.in_channels for m in hong.mask_stream if isinstance(m, nn.ConvTranspose2d)] == \
        [16, 8]
    assert [m.in_channels for m in plain.context_stream
            if isinstance(m, nn.ConvTranspose2d)] == [16, 8]
    assert "build_settings" not in plain.state_dict()


def test_the_skip_carries_the_encoder_features_into_the_context_stream():
    from torch import nn
    torch.manual_seed(0)
    hong = TwoStreamGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=1, norm="batch",
                              encoder_skips=True)
    relus = [m for m in hong.encoder if isinstance(m, nn.ReLU)]
    second_up = [m for m in hong.context_stream if isinstance(m, nn.ConvTranspose2d)][1]
    seen = {}
    relus[1].register_forward_hook(lambda m, args, out: seen.setdefault("encoder", out.clone()))
    second_up.register_forward_pre_hook(lambda m, args: seen.setdefault("input", args[0]))
    hong(torch.rand(2, 5, 16, 16))
    assert seen["encoder"].shape == (2, 8, 8, 8)
    assert torch.equal(seen["input"][:, :8], seen["encoder"])


def test_a_saved_hong_generator_reloads_as_what_it_was():
    torch.manual_seed(0)
    hong = TwoStreamGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=1, norm="batch",
                              encoder_skips=True, label_rule="painted_mask")
    hong(torch.rand(2, 5, 16, 16))                         # running statistics move
    reloaded = TwoStreamGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=1)
    reloaded.load_state_dict(hong.state_dict())
    assert reloaded.settings() == ("batch", True, "painted_mask")
    x = torch.rand(1, 5, 16, 16)
    assert torch.equal(reloaded.eval()(x), hong.eval()(x))
    back = TwoStreamGenerator(5, 3, ngf=4, n_downsampling=2, n_blocks=1, norm="batch")
    back.load_state_dict(TwoStreamGenerator(5, 3, ngf=4, n_downsampling=2,
                                            n_blocks=1).state_dict())
    assert back.settings() == ("instance", False, "context_argmax")
    assert "build_settings" not in back.state_dict()


#---------------------------------------------------------------------------------------------
# 5. Background boxes and enlarged boxes in the training plan


class ManyImages:
    """1000 copies of the tiny map, each with one car box."""

    def __init__(self, count=1000):
        labels, instances = tiny_map()
        self.labels = np.repeat(labels[None], count, 0)
        self.instances = np.repeat(instances[None], count, 0)
        self.names = [f"img{i}" for i in range(count)]


def task(background_boxes, enlarged_boxes=False, count=1000):
    split = ManyImages(count)
    boxes = {name: [EditBox(name, 26, (10, 6, 18, 12))] for name in split.names}
    observation = Observation("full", 16, enlarged_boxes=enlarged_boxes,
                              background_boxes=background_boxes)
    return TwoStreamTask(split, SPEC, boxes, observation, batch_size=10, flip=True, seed=5)


@pytest.mark.parametrize("share", [0.0, 0.3, 0.7])
def test_background_boxes_are_drawn_at_the_configured_share_with_a_fixed_seed(share):
    plans = task(share).plan(0)
    draws = [d for plan in plans for d in plan[3]]
    drawn = sum(d.background is not None for d in draws)
    assert abs(drawn / len(draws) - share) <= 0.045       # 3 sigma of 1000 draws at 0.3
    assert drawn == sum(d.background is not None for plan in task(share).plan(0)
                        for d in plan[3])                 # a function of (seed, epoch)
    for d in draws:
        if d.background is not None:
            x1, y1, x2, y2 = d.background.box              # sides [32/16, 32/8) = 2..3 px
            assert d.background.label == SPEC.num_labels - 1
            assert 2 <= x2 - x1 <= 3 and 2 <= y2 - y1 <= 3
            assert 0 <= x1 and x2 <= 32 and 0 <= y1 and y2 <= 16


def test_a_background_sample_has_no_object_and_its_box_painted_with_the_last_label():
    hong = task(0.7, enlarged_boxes=True, count=20)
    indices, edits, flips, draws = plan = hong.plan(0)[0]
    batch = hong.build(plan)
    for sample, d in enumerate(draws):
        x1, y1, x2, y2 = batch.boxes[sample]
        su = batch.condition[sample, :SPEC.num_labels].argmax(0)
        if d.background is not None:
            assert batch.boxes[sample] == d.background.box
            assert batch.target[sample, 0].sum() == 0
            assert (su[y1:y2, x1:x2] == SPEC.num_labels - 1).all()
        else:
            assert batch.target[sample, 0].sum() > 0 and (su[y1:y2, x1:x2] == 26).all()
        # the enlarged box: 1.2..1.5 x the box about its centre, inside the view
        ex1, ey1, ex2, ey2 = batch.enlarged_boxes[sample]
        assert 1.2 <= d.ratio <= 1.5
        assert ex1 <= x1 and ey1 <= y1 and ex2 >= x2 and ey2 >= y2
    assert any(d.background is not None for d in draws)
    assert any(d.background is None for d in draws)


def test_the_simplified_plan_draws_only_the_window_offsets():
    draws = [d for plan in task(0.0, count=20).plan(0) for d in plan[3]]
    assert all(d.ratio is None and d.background is None for d in draws)
    batch = task(0.0, count=20).build(task(0.0, count=20).plan(0)[0])
    assert batch.enlarged_boxes == ()


def test_a_background_box_has_an_empty_object_target_even_over_pixels_of_its_label():
    labels, instances = tiny_map()
    labels[2:5, 2:6] = instances[2:5, 2:6] = SPEC.num_labels - 1   # license plate pixels

    class One:
        def __init__(self):
            self.labels, self.instances = labels[None], instances[None]

    edit = EditBox("a", SPEC.num_labels - 1, (1, 1, 7, 6))
    for background, pixels in ((True, 0), (False, 12)):
        batch = twosm_batch(One(), SPEC, Observation("full", 16), [0], [edit], [False], [None],
                            "cpu", backgrounds=[background])
        assert batch.target[0, 0].sum() == pixels


def test_a_twosm_batch_carries_the_enlarged_box_of_its_ratio():
    labels, instances = tiny_map()

    class One:
        def __init__(self):
            self.labels, self.instances = labels[None], instances[None]

    batch = twosm_batch(One(), SPEC, Observation("full", 16), [0],
                        [EditBox("a", 26, (10, 6, 18, 12))], [False], [None], "cpu",
                        ratios=[1.5])
    assert batch.enlarged_boxes == ((8, 4, 20, 14),)
    moved = batch.to("cpu")
    assert isinstance(moved, TwoStreamBatch) and moved.enlarged_boxes == batch.enlarged_boxes
