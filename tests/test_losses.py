"""pipeline.models.losses: Eq 5 fusion, the LSGAN term, MEx crops / A-MEx masks (Eq 6-9) and the
gradient flow of every loss plug-in (G terms reach G only, D terms reach D only).
Tiny networks on 16x32 maps, CPU; the VGG19 is the random-init stand-in (no weights file)."""
import pytest
import torch

from pipeline.data.inputs import GanBatch
from pipeline.models.losses import (AMExLoss, MExLoss, Pix2PixHDLoss, at_least_2x2, crop_canvas,
                                    expanded_crops, expanded_masks, lsgan)
from pipeline.models.networks import (CanvasDiscriminators, GlobalGenerator, PatchDiscriminator,
                               VGG19Features, masked_instance_norm)

C, H, W = 5, 16, 32                      # condition channels, map size
BOXES = ((10, 4, 14, 8), (28, 12, 32, 16))
ALPHA, BETA = 3, 2
# Expanded boxes (Eq 6, clamped to 32x16), worked out by hand:
#   sample 0: j=0 (10,4,14,8) 4x4 | j=1 (7,2,17,10) 8 rows x 10 cols | j=2 (4,0,20,12) 12x16
#   sample 1: j=0 (28,12,32,16) 4x4 | j=1 (25,10,32,16) 6x7 | j=2 (22,8,32,16) 8x10
EXPANDED = [[(10, 4, 14, 8), (28, 12, 32, 16)],
            [(7, 2, 17, 10), (25, 10, 32, 16)],
            [(4, 0, 20, 12), (22, 8, 32, 16)]]


@pytest.fixture(scope="module")
def vgg():
    return VGG19Features()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    condition = torch.rand(2, C, H, W, generator=g) + 0.5       # strictly positive
    target = torch.rand(2, 3, H, W, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, H, W)
    for n, (x1, y1, x2, y2) in enumerate(BOXES):
        mask[n, :, y1:y2, x1:x2] = 1
    return GanBatch(condition=condition, target=target, mask=mask, boxes=BOXES)


def _generator():
    torch.manual_seed(0)
    return GlobalGenerator(C, ngf=4, n_downsampling=2, n_blocks=1)


def _loss(kind, vgg, q=2, on="raw"):
    torch.manual_seed(1)
    if kind == "pix2pixhd":
        return Pix2PixHDLoss(C, vgg, ndf=4, n_layers=2, num_d=2, on=on)
    if kind in ("mex", "mex_canvas"):  # mex_canvas: the D_j as one network on a crop canvas
        return MExLoss(C, top_level=q, alpha=ALPHA, beta=BETA, ndf=4, n_layers=2,
                       crop_canvas=8 if kind == "mex_canvas" else 0)
    return AMExLoss(C, top_level=q, alpha=ALPHA, beta=BETA, ndf=4, n_layers=2)


# ---------------------------------------------------------------------------------------------
# Eq 5 and the LSGAN term


def test_fuse_takes_generated_inside_the_mask_and_target_outside():
    target = torch.tensor([[[[1., 2., 3.], [4., 5., 6.]],
                            [[-1., -2., -3.], [-4., -5., -6.]]]])     # (1, 2, 2, 3)
    generated = target * 10
    mask = torch.tensor([[[[0., 1., 1.], [0., 0., 1.]]]])             # (1, 1, 2, 3)
    batch = GanBatch(condition=torch.zeros(1, 1, 2, 3), target=target, mask=mask)
    expected = torch.tensor([[[[1., 20., 30.], [4., 5., 60.]],
                              [[-1., -20., -30.], [-4., -5., -60.]]]])
    assert torch.equal(batch.fuse(generated), expected)


def test_fuse_without_mask_returns_the_generated_tensor():
    generated = torch.randn(1, 3, 4, 4)
    batch = GanBatch(condition=torch.zeros(1, 1, 4, 4), target=torch.zeros(1, 3, 4, 4))
    assert batch.fuse(generated) is generated


@pytest.mark.parametrize("score, real, expected", [(0.5, True, 0.25), (0.5, False, 0.25),
                                                   (2.0, True, 1.0), (2.0, False, 4.0),
                                                   (-1.0, True, 4.0), (1.0, True, 0.0),
                                                   (0.0, False, 0.0)])
def test_lsgan_on_constant_scores(score, real, expected):
    assert lsgan(torch.full((2, 1, 3, 3), score), real).item() == pytest.approx(expected)


def test_lsgan_is_the_mean_over_elements():
    score = torch.tensor([0.0, 1.0, 2.0, 3.0])   # (D-1)^2 = 1, 0, 1, 4 -> mean 1.5
    assert lsgan(score, True).item() == pytest.approx(1.5)


# ---------------------------------------------------------------------------------------------
# MEx crops and A-MEx masks


def test_expanded_crops_shapes_follow_the_expanded_boxes():
    batch = _batch()
    crops = expanded_crops(batch, batch.target, 2, ALPHA, BETA)
    shapes = [[tuple(c.shape) for c in per_sample] for per_sample in crops]
    assert shapes == [[(1, C + 3, 4, 4), (1, C + 3, 4, 4)],
                      [(1, C + 3, 8, 10), (1, C + 3, 6, 7)],
                      [(1, C + 3, 12, 16), (1, C + 3, 8, 10)]]


def test_expanded_crops_content_is_the_condition_and_image_slice():
    batch = _batch()
    image = torch.randn(2, 3, H, W)
    crops = expanded_crops(batch, image, 2, ALPHA, BETA)
    # sample 1, j = 2: rows 8..15, columns 22..31
    assert torch.equal(crops[2][1][:, :C], batch.condition[1:2, :, 8:16, 22:32])
    assert torch.equal(crops[2][1][:, C:], image[1:2, :, 8:16, 22:32])
    # sample 0, j = 1: rows 2..9, columns 7..16
    assert torch.equal(crops[1][0][:, :C], batch.condition[0:1, :, 2:10, 7:17])
    assert torch.equal(crops[1][0][:, C:], image[0:1, :, 2:10, 7:17])


def test_expanded_crops_q_zero_is_the_box_crop():
    batch = _batch()
    crops = expanded_crops(batch, batch.target, 0, ALPHA, BETA)
    assert len(crops) == 1
    assert torch.equal(crops[0][0][:, C:], batch.target[0:1, :, 4:8, 10:14])


def test_expanded_masks_shape_values_and_areas():
    masks = expanded_masks(BOXES, 2, ALPHA, BETA, H, W)
    assert masks.shape == (3, 2, 1, H, W)
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    areas = masks.sum(dim=(2, 3, 4)).tolist()
    assert areas == [[16.0, 16.0], [80.0, 42.0], [192.0, 80.0]]


def test_expanded_mask_level_zero_is_the_fusion_mask():
    masks = expanded_masks(BOXES, 2, ALPHA, BETA, H, W)
    assert torch.equal(masks[0], _batch().mask)


def test_expanded_mask_support_is_the_expanded_box():
    masks = expanded_masks(BOXES, 2, ALPHA, BETA, H, W)
    expected = torch.zeros(H, W)
    expected[0:12, 4:20] = 1          # sample 0, j = 2: (4, 0, 20, 12)
    assert torch.equal(masks[2, 0, 0], expected)


# ---------------------------------------------------------------------------------------------
# Discriminator counts


@pytest.mark.parametrize("q, count", [(0, 1), (1, 2), (4, 5)])
def test_mex_has_q_plus_one_discriminators(q, count):
    loss = MExLoss(C, top_level=q, alpha=1, beta=1, ndf=4, n_layers=2)
    assert len(loss.discriminators) == count
    assert sum(isinstance(m, PatchDiscriminator) for m in loss.modules()) == count


@pytest.mark.parametrize("q", [0, 4])
def test_amex_has_exactly_one_discriminator(q):
    loss = AMExLoss(C, top_level=q, alpha=1, beta=1, ndf=4, n_layers=2)
    assert sum(isinstance(m, PatchDiscriminator) for m in loss.modules()) == 1


def test_discriminators_are_conditioned_on_the_generator_input(vgg):
    for kind in ("pix2pixhd", "mex", "amex"):
        first_convs = [m for m in _loss(kind, vgg).modules() if isinstance(m, torch.nn.Conv2d)
                       and m.in_channels == C + 3]
        assert first_convs, kind


# ---------------------------------------------------------------------------------------------
# Which discriminator sees what


def test_mex_discriminator_j_sees_the_j_level_crops(vgg):
    loss = _loss("mex", vgg, q=2)
    seen = {j: [] for j in range(3)}
    for j, D in enumerate(loss.discriminators):
        D.register_forward_hook(lambda m, inputs, out, j=j: seen[j].extend(
            [tuple(inputs[0].shape[-2:])] * inputs[0].shape[0]))  # crops of one size: one call
    batch = _batch()
    loss.generator_terms(batch, batch.target, batch.target)
    assert seen == {0: [(4, 4), (4, 4)], 1: [(8, 10), (6, 7)], 2: [(12, 16), (8, 10)]}


def test_amex_discriminator_sees_q_plus_one_masked_copies_in_one_batch(vgg):
    loss = _loss("amex", vgg, q=2)
    seen = []
    loss.discriminator.register_forward_hook(lambda m, inputs, out: seen.append(inputs[0]))
    batch = _batch()
    loss.generator_terms(batch, batch.target, batch.target)
    (masked,) = seen
    assert masked.shape == (3 * 2, C + 3, H, W)      # (q+1)·N full-size maps
    # index j·N + n holds sample n under mask j: sample 1, j = 2 is non-zero on (22, 8, 32, 16)
    support = torch.zeros(H, W, dtype=torch.bool)
    support[8:16, 22:32] = True
    assert torch.equal(masked[2 * 2 + 1].abs().sum(0) > 0, support)


# ---------------------------------------------------------------------------------------------
# Gradient flow

TERMS = [("pix2pixhd", "G_adv"), ("pix2pixhd", "G_feat"), ("pix2pixhd", "G_perc"),
         ("mex", "G_mex"), ("amex", "G_amex")]


def _grads(module):
    return [p.grad for p in module.parameters()]


@pytest.mark.parametrize("kind, term", TERMS)
def test_every_generator_term_reaches_the_generator(vgg, kind, term):
    generator, loss, batch = _generator(), _loss(kind, vgg), _batch()
    generated = generator(batch.condition)
    terms = loss.generator_terms(batch, generated, batch.fuse(generated))
    terms[term].backward()
    grads = [g for g in _grads(generator) if g is not None]
    assert grads
    assert all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind", ["pix2pixhd", "mex", "amex"])
def test_generator_terms_leave_no_gradient_on_discriminators(vgg, kind):
    generator, loss, batch = _generator(), _loss(kind, vgg), _batch()
    generated = generator(batch.condition)
    sum(loss.generator_terms(batch, generated, batch.fuse(generated)).values()).backward()
    assert all(g is None for g in _grads(loss))
    # the frozen context restores the discriminators' trainable flags afterwards
    trainable = [p.requires_grad for name, p in loss.named_parameters()
                 if not name.startswith("vgg.")]
    assert trainable and all(trainable)


@pytest.mark.parametrize("kind", ["pix2pixhd", "mex", "amex"])
def test_discriminator_terms_reach_every_discriminator_and_not_the_generator(vgg, kind):
    generator, loss, batch = _generator(), _loss(kind, vgg), _batch()
    generated = generator(batch.condition)
    terms = loss.discriminator_terms(batch, generated, batch.fuse(generated))
    sum(terms.values()).backward()
    assert all(g is None for g in _grads(generator))
    discriminators = {"pix2pixhd": lambda: list(loss.discriminator.scales),
                      "mex": lambda: list(loss.discriminators),
                      "amex": lambda: [loss.discriminator]}[kind]()
    for D in discriminators:
        grads = _grads(D)
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)


def test_discriminator_term_names(vgg):
    batch = _batch()
    names = {kind: set(_loss(kind, vgg).discriminator_terms(batch, batch.target,
                                                            batch.target))
             for kind in ("pix2pixhd", "mex", "amex")}
    assert names == {"pix2pixhd": {"D_fake", "D_real"},
                     "mex": {"D_mex_fake", "D_mex_real"},
                     "amex": {"D_amex_fake", "D_amex_real"}}


@pytest.mark.parametrize("on, outside_grad", [("raw", True), ("fused", False)])
def test_basic_loss_scores_raw_or_fused_output(vgg, on, outside_grad):
    # on="raw" (Eq 1) scores Ỹ everywhere; on="fused" scores Ŷ, which ignores Ỹ outside the box
    loss, batch = _loss("pix2pixhd", vgg, on=on), _batch()
    generated = torch.rand(2, 3, H, W, requires_grad=True)
    terms = loss.generator_terms(batch, generated, batch.fuse(generated))
    (terms["G_adv"] + terms["G_perc"]).backward()
    outside = generated.grad * (1 - batch.mask)
    assert bool(outside.abs().sum() > 0) is outside_grad
    assert (generated.grad * batch.mask).abs().sum() > 0


def test_mex_generator_term_only_reaches_the_box(vgg):
    # L_MEx scores Ŷ (Eq 5), so Ỹ outside the box gets no gradient from it
    loss, batch = _loss("mex", vgg), _batch()
    generated = torch.rand(2, 3, H, W, requires_grad=True)
    loss.generator_terms(batch, generated, batch.fuse(generated))["G_mex"].backward()
    assert (generated.grad * (1 - batch.mask)).abs().sum() == 0
    assert (generated.grad * batch.mask).abs().sum() > 0


def test_mex_handles_a_one_pixel_box(vgg):
    loss = _loss("mex", vgg, q=1)
    batch = GanBatch(condition=torch.rand(1, C, H, W), target=torch.rand(1, 3, H, W),
                     mask=torch.zeros(1, 1, H, W), boxes=((5, 5, 6, 6),))
    value = loss.generator_terms(batch, batch.target, batch.target)["G_mex"]
    assert torch.isfinite(value)


@pytest.mark.parametrize("vgg_input", ["imagenet", "raw"])
def test_vgg_input_is_imagenet_normalised_or_fed_as_is(vgg_input):
    """profile vgg_input: imagenet maps [-1, 1] to ImageNet mean / std (paper profile); raw feeds
    [-1, 1] unchanged, as pix2pixHD does (authors profile)."""
    vgg = VGG19Features(vgg_input=vgg_input)
    seen = []
    vgg.slices[0].register_forward_hook(lambda module, inputs, out: seen.append(inputs[0]))
    image = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    vgg(image)
    if vgg_input == "raw":
        expected = image
    else:   # (x + 1) / 2 = 0, 0.5, 1 per channel, minus ImageNet mean, over its std
        expected = torch.tensor([(0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224,
                                 (1 - 0.406) / 0.225]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    assert torch.allclose(seen[0], expected)


def test_vgg_input_must_be_known():
    with pytest.raises(ValueError, match="vgg_input 'bgr'"):
        VGG19Features(vgg_input="bgr")


# ---------------------------------------------------------------------------------------------
# The batched fast paths against plain loops (same inputs, same numbers)


def _plain_mex(loss, batch, image, real):
    """Eq 7 the plain way: every D_j on every sample's hand-computed crop alone (q = 2)."""
    pair = torch.cat([batch.condition, image], 1)
    return sum(lsgan(D(pair[n:n + 1, :, y1:y2, x1:x2])[-1], real)
               for j, D in enumerate(loss.discriminators)
               for n, (x1, y1, x2, y2) in enumerate(EXPANDED[j])) / len(BOXES)


def _plain_amex(loss, batch, image, real):
    """Eq 9 the plain way: D_E on each masked pair alone."""
    masks = expanded_masks(BOXES, loss.top_level, ALPHA, BETA, H, W)
    pair = torch.cat([batch.condition, image], 1)
    return sum(lsgan(loss.discriminator(pair[n:n + 1] * masks[j, n:n + 1])[-1], real)
               for j in range(loss.top_level + 1) for n in range(len(BOXES))) / len(BOXES)


@pytest.mark.parametrize("kind, plain", [("mex", _plain_mex), ("mex_canvas", _plain_mex),
                                         ("amex", _plain_amex)])
def test_batched_expansion_terms_equal_the_plain_loops(vgg, kind, plain):
    loss = _loss(kind, vgg, q=2)
    loss.lambda_mex = 0.7
    batch = _batch(seed=4)
    fake = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(9)) * 2 - 1
    term = loss.term
    g = loss.generator_terms(batch, fake, fake)[f"G_{term}"]
    d = loss.discriminator_terms(batch, fake, fake)
    with torch.no_grad():
        assert torch.allclose(g, 0.7 * plain(loss, batch, fake, True), atol=1e-6)
        assert torch.allclose(d[f"D_{term}_fake"], 0.35 * plain(loss, batch, fake, False),
                              atol=1e-6)
        assert torch.allclose(d[f"D_{term}_real"], 0.35 * plain(loss, batch, batch.target, True),
                              atol=1e-6)


def _weighted(kind, vgg, on="raw"):
    """A plug-in with every weight != 1, so that a term missing or counted twice shows."""
    loss = _loss(kind, vgg, on=on)
    if kind == "pix2pixhd":
        loss.lambda_adv, loss.lambda_feat, loss.lambda_perc = 0.7, 1.9, 2.3
    elif kind == "twosm":
        loss.lambda_gan, loss.lambda_mask, loss.lambda_context = 0.3, 1.7, 0.6
    else:
        loss.lambda_mex = 1.3
    return loss


def _separate_and_joint(loss, batch, generated_value, joint):
    """Terms, dG/d(generated) and the D gradients of one step: the generator terms (D frozen)
    and the discriminator terms (fake detached) apart, or joint_terms with the trainer's two
    backward passes restricted by `inputs`."""
    generated = generated_value.clone().requires_grad_(True)
    fused = batch.fuse(generated)
    d_params = [p for p in loss.parameters() if p.requires_grad]
    loss.zero_grad(set_to_none=True)
    if joint:
        g_terms, d_terms = loss.joint_terms(batch, generated, fused)
        torch.autograd.backward(sum(d_terms.values()), inputs=d_params, retain_graph=True)
        torch.autograd.backward(sum(g_terms.values()), inputs=[generated])
    else:
        g_terms = loss.generator_terms(batch, generated, fused)
        sum(g_terms.values()).backward()
        assert all(p.grad is None for p in d_params)
        d_terms = loss.discriminator_terms(batch, generated, fused)
        sum(d_terms.values()).backward()
    return ({k: v.detach() for k, v in {**g_terms, **d_terms}.items()}, generated.grad,
            [p.grad.clone() for p in d_params])


@pytest.mark.parametrize("kind, on", [("pix2pixhd", "raw"), ("pix2pixhd", "fused"),
                                      ("mex", "raw"), ("mex_canvas", "raw"), ("amex", "raw"),
                                      ("twosm", "raw")])
def test_joint_terms_equal_the_separate_generator_and_discriminator_terms(vgg, kind, on):
    """One discriminator pass over fake and real (the trainer's joint step) gives the terms and
    the gradients -- G's through D, D's own -- of the separate G step and D step."""
    if kind == "twosm":
        from pipeline.models.twosm import TwoStreamLoss
        torch.manual_seed(1)
        loss = TwoStreamLoss(C, 3, ndf=4, n_layers=2, num_d=2)
        loss.lambda_gan, loss.lambda_mask, loss.lambda_context = 0.3, 1.7, 0.6
        g = torch.Generator().manual_seed(3)
        batch = _batch(seed=5)
        labels = torch.nn.functional.one_hot(torch.randint(0, 3, (2, H, W), generator=g), 3)
        batch.target = torch.cat([torch.rand(2, 1, H, W, generator=g).round(),
                                  labels.permute(0, 3, 1, 2).float()], 1)
        batch.mask = None
        generated = torch.cat([torch.rand(2, 1, H, W, generator=g),
                               torch.rand(2, 3, H, W, generator=g).softmax(1)], 1)
    else:
        loss, batch = _weighted(kind, vgg, on), _batch(seed=5)
        generated = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(3)) * 2 - 1
    separate_terms, separate_g, separate_d = _separate_and_joint(loss, batch, generated, False)
    joint_terms, joint_g, joint_d = _separate_and_joint(loss, batch, generated, True)
    assert joint_terms.keys() == separate_terms.keys()
    for name in separate_terms:
        assert torch.allclose(joint_terms[name], separate_terms[name], rtol=1e-5, atol=1e-7), name
    assert torch.allclose(joint_g, separate_g, rtol=1e-4, atol=1e-8)
    for a, b in zip(joint_d, separate_d):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-8), (a - b).abs().max()


# ---------------------------------------------------------------------------------------------
# MEx's crop canvas: the q+1 D_j as one grouped network (train.mex_crop_canvas)


def test_crop_canvas_holds_each_crop_at_the_top_left_and_zeros_elsewhere():
    batch = _batch()
    image = torch.randn(2, 3, H, W)
    canvas, heights, widths = crop_canvas(batch, [image, batch.target], 2, ALPHA, BETA, 8)
    # largest crop 12 rows x 16 columns (sample 0, j = 2): a 16 x 16 canvas at multiples of 8
    assert canvas.shape == (2 * 2, 3 * (C + 3), 16, 16)
    assert heights.tolist() == [[4, 8, 12], [4, 6, 8]]
    assert widths.tolist() == [[4, 10, 16], [4, 7, 10]]
    pair = torch.cat([batch.condition, image], 1)
    for j, per_sample in enumerate(EXPANDED):
        for n, (x1, y1, x2, y2) in enumerate(per_sample):
            crop = canvas[n, j * (C + 3):(j + 1) * (C + 3)]      # image 0, sample n, level j
            assert torch.equal(crop[:, :y2 - y1, :x2 - x1], pair[n, :, y1:y2, x1:x2])
            outside = crop.clone()
            outside[:, :y2 - y1, :x2 - x1] = 0
            assert outside.abs().sum() == 0
    # rows 2..3 hold image 1 (the target), sample 1, j = 1: rows 10..15, columns 25..31
    assert torch.equal(canvas[3, C + 3 + C:2 * (C + 3), :6, :7], batch.target[1, :, 10:16, 25:32])


def test_crop_canvas_replicates_the_last_row_of_a_one_pixel_crop():
    batch = GanBatch(condition=torch.rand(1, C, H, W), target=torch.rand(1, 3, H, W),
                     boxes=((5, 5, 6, 9),))                   # 1 column x 4 rows
    canvas, heights, widths = crop_canvas(batch, [batch.target], 0, ALPHA, BETA, 3)
    assert canvas.shape == (1, C + 3, 6, 3) and widths.tolist() == [[2]]
    pair = torch.cat([batch.condition, batch.target], 1)
    assert torch.equal(canvas[0, :, :4, 0], pair[0, :, 5:9, 5])
    assert torch.equal(canvas[0, :, :4, 1], pair[0, :, 5:9, 5])
    assert canvas[0, :, 4:].abs().sum() == 0 and canvas[0, :, :, 2].abs().sum() == 0


def test_masked_instance_norm_is_instance_norm_over_the_valid_region():
    x = torch.randn(2, 3, 7, 9) * 3 + 1
    valid = torch.zeros(2, 1, 7, 9)
    valid[0, :, :4, :5] = 1
    valid[1, :, :7, :2] = 1
    out = masked_instance_norm(x, valid, 1e-5)
    expected = torch.nn.functional.instance_norm(x[0:1, :, :4, :5])
    assert torch.allclose(out[0, :, :4, :5], expected[0], atol=1e-5)
    assert torch.allclose(out[1, :, :, :2],
                          torch.nn.functional.instance_norm(x[1:2, :, :, :2])[0], atol=1e-5)
    assert out[0, :, 4:].abs().sum() == 0 and out[1, :, :, 2:].abs().sum() == 0


@pytest.mark.parametrize("multiple", [1, 5, 32])
def test_canvas_network_scores_each_crop_as_its_discriminator_alone(multiple):
    """Three layers of PatchGAN (stride 2, 2, 1 and the score conv) on crops of 1 to 16 px,
    thin ones included: every score map equals D_j on the crop alone; past it, zeros."""
    torch.manual_seed(2)
    discriminators = torch.nn.ModuleList(PatchDiscriminator(C + 3, 4, 3) for _ in range(3))
    boxes = ((10, 4, 14, 8), (31, 0, 32, 16), (0, 15, 32, 16))
    batch = GanBatch(condition=torch.rand(3, C, H, W), target=torch.rand(3, 3, H, W),
                     boxes=boxes)
    canvas, heights, widths = crop_canvas(batch, [batch.target], 2, ALPHA, BETA, multiple)
    scores, valid = CanvasDiscriminators()(discriminators, canvas, heights, widths)
    crops = expanded_crops(batch, batch.target, 2, ALPHA, BETA)
    for j, D in enumerate(discriminators):
        for n in range(3):
            alone = D(at_least_2x2(crops[j][n]))[-1][0]
            h, w = alone.shape[-2:]
            assert valid[n, j, 0].sum() == h * w
            assert torch.allclose(scores[n, j, :, :h, :w], alone, atol=1e-5), (j, n)
            outside = scores[n, j].clone()
            outside[:, :h, :w] = 0
            assert outside.abs().sum() == 0


def test_canvas_and_per_size_paths_give_the_same_step(vgg):
    """Terms, dG/d(generated) and every D_j's gradients of the joint step, λ4 = 1.3."""
    per_size, canvas = _weighted("mex", vgg), _weighted("mex_canvas", vgg)
    canvas.load_state_dict(per_size.state_dict())
    batch = _batch(seed=6)
    generated = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(8)) * 2 - 1
    terms_a, g_a, d_a = _separate_and_joint(per_size, batch, generated, True)
    terms_b, g_b, d_b = _separate_and_joint(canvas, batch, generated, True)
    assert terms_a.keys() == terms_b.keys()
    for name in terms_a:
        assert torch.allclose(terms_a[name], terms_b[name], rtol=1e-5), name
    assert torch.allclose(g_a, g_b, rtol=1e-4, atol=1e-8)
    assert len(d_a) == len(d_b) == 3 * 8            # 3 D_j x (4 convs x weight and bias)
    # The biases before an instance norm get 0 in exact arithmetic (rounding noise here): the
    # float tolerance is relative to the largest gradient.
    scale = max(float(a.abs().max()) for a in d_a)
    for a, b in zip(d_a, d_b):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * scale), (a - b).abs().max()


def test_crop_canvas_must_not_be_negative():
    with pytest.raises(ValueError, match="crop_canvas -8"):
        MExLoss(C, top_level=1, alpha=1, beta=1, ndf=4, n_layers=2, crop_canvas=-8)
