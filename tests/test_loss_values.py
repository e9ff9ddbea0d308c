"""Loss values against a hand computation: the MEx (Eq 6-7), A-MEx (Eq 9) and Pix2PixHD (Eq 1-4)
terms of pipeline.models.losses on tiny tensors, with the discriminators (and the VGG19) replaced by
fixed stubs whose outputs have closed forms. The expected numbers are computed here with numpy
from the equations and hand-derived expanded boxes, never with the code under test.

What must fail here: dropping the j > 0 terms, averaging instead of summing over j, summing
instead of averaging over the batch, ignoring λ4 (lambda_mex), λ1..λ3 or the VGG layer weights,
losing the ½ of the D terms, or feature matching not averaged over the D scales.
Every weight is != 1 so that a dropped factor changes the value."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from pipeline.data.inputs import GanBatch
from pipeline.models.losses import AMExLoss, MExLoss, Pix2PixHDLoss

C, H, W = 2, 8, 12                       # condition channels, map size
BOXES = ((3, 2, 6, 5), (8, 4, 12, 8))    # half-open (x1, y1, x2, y2); sample 1 on the corner
Q, ALPHA, BETA = 2, 2, 1
# bE_j (Eq 6) by hand, clamped to 12 x 8:
#   sample 0: j=0 (3, 2, 6, 5) | j=1 (1, 1, 8, 6) | j=2 (3-4, 2-2, 6+4, 5+2) -> (0, 0, 10, 7)
#   sample 1: j=0 (8, 4, 12, 8) | j=1 (6, 3, 12, 8) | j=2 (4, 2, 12, 8)
EXPANDED = [[(3, 2, 6, 5), (8, 4, 12, 8)],
            [(1, 1, 8, 6), (6, 3, 12, 8)],
            [(0, 0, 10, 7), (4, 2, 12, 8)]]
LAMBDA_MEX = 0.7
K = (0.5, 1.5, 2.5)                      # the stub D_j's score factor, j = 0..q


class MeanStub(nn.Module):
    """A fixed D: its score map is k times the mean of the image channels (the last
    `image_channels` of its input), one score per sample; its only feature is the input."""

    def __init__(self, k: float, image_channels: int = 3):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(float(k)))
        self.image_channels = image_channels

    def forward(self, x):
        score = self.k * x[:, -self.image_channels:].mean(dim=(1, 2, 3), keepdim=True)
        return [x, score]


def _batch():
    g = torch.Generator().manual_seed(7)
    condition = torch.rand(2, C, H, W, generator=g)
    target = torch.rand(2, 3, H, W, generator=g) * 2 - 1
    mask = torch.zeros(2, 1, H, W)
    for n, (x1, y1, x2, y2) in enumerate(BOXES):
        mask[n, :, y1:y2, x1:x2] = 1
    generated = torch.rand(2, 3, H, W, generator=g) * 2 - 1
    return GanBatch(condition=condition, target=target, mask=mask, boxes=BOXES), generated


def _numpy(t):
    return t.detach().numpy().astype(np.float64)


def _crop_means(image, boxes_of_j):
    """mean over the 3 channels and the pixels of each sample's crop: (q+1, N)."""
    return np.array([[image[n, :, y1:y2, x1:x2].mean() for n, (x1, y1, x2, y2)
                      in enumerate(boxes)] for boxes in boxes_of_j])


def _masked_means(image, boxes_of_j):
    """mean over 3 x H x W of the image times the mask of each expanded box: (q+1, N)."""
    out = np.zeros((len(boxes_of_j), image.shape[0]))
    for j, boxes in enumerate(boxes_of_j):
        for n, (x1, y1, x2, y2) in enumerate(boxes):
            out[j, n] = image[n, :, y1:y2, x1:x2].sum() / (3 * H * W)
    return out


def _expansion_terms(means_fake, means_real):
    """Eq 7 / 9 with LSGAN terms, from the per-(j, n) stub inputs: sum over j, mean over n."""
    k = np.array(K)[:, None]
    g = LAMBDA_MEX * ((k * means_fake - 1) ** 2).mean(axis=1).sum()
    d_fake = 0.5 * LAMBDA_MEX * ((k * means_fake) ** 2).mean(axis=1).sum()
    d_real = 0.5 * LAMBDA_MEX * ((k * means_real - 1) ** 2).mean(axis=1).sum()
    return g, d_fake, d_real


# ---------------------------------------------------------------------------------------------
# MEx (Eq 6-7) and A-MEx (Eq 9)


def test_mex_values_match_the_hand_computation():
    loss = MExLoss(C, top_level=Q, alpha=ALPHA, beta=BETA, ndf=4, n_layers=2, lambda_mex=LAMBDA_MEX)
    loss.discriminators = nn.ModuleList(MeanStub(k) for k in K)
    batch, generated = _batch()
    fused = batch.fuse(generated)
    g, d_fake, d_real = _expansion_terms(_crop_means(_numpy(fused), EXPANDED),
                                         _crop_means(_numpy(batch.target), EXPANDED))
    assert loss.generator_terms(batch, generated, fused)["G_mex"].item() == pytest.approx(g)
    terms = loss.discriminator_terms(batch, generated, fused)
    assert terms["D_mex_fake"].item() == pytest.approx(d_fake)
    assert terms["D_mex_real"].item() == pytest.approx(d_real)


def test_amex_values_match_the_hand_computation():
    loss = AMExLoss(C, top_level=Q, alpha=ALPHA, beta=BETA, ndf=4, n_layers=2, lambda_mex=LAMBDA_MEX)
    batch, generated = _batch()
    fused = batch.fuse(generated)
    loss.discriminator = MeanStub(K[1])   # one D for every j: the masks make the j-dependence
    k = K[1]
    fake = _masked_means(_numpy(fused), EXPANDED)
    real = _masked_means(_numpy(batch.target), EXPANDED)
    g = LAMBDA_MEX * ((k * fake - 1) ** 2).mean(axis=1).sum()
    d_fake = 0.5 * LAMBDA_MEX * ((k * fake) ** 2).mean(axis=1).sum()
    d_real = 0.5 * LAMBDA_MEX * ((k * real - 1) ** 2).mean(axis=1).sum()
    assert loss.generator_terms(batch, generated, fused)["G_amex"].item() == pytest.approx(g)
    terms = loss.discriminator_terms(batch, generated, fused)
    assert terms["D_amex_fake"].item() == pytest.approx(d_fake)
    assert terms["D_amex_real"].item() == pytest.approx(d_real)


@pytest.mark.parametrize("kind", [MExLoss, AMExLoss])
def test_expansion_term_is_linear_in_lambda_mex(kind):
    batch, generated = _batch()
    fused = batch.fuse(generated)
    values = []
    for lam in (0.7, 2.1):
        loss = kind(C, top_level=Q, alpha=ALPHA, beta=BETA, ndf=4, n_layers=2, lambda_mex=lam)
        if kind is MExLoss:
            loss.discriminators = nn.ModuleList(MeanStub(k) for k in K)
        else:
            loss.discriminator = MeanStub(K[1])
        values.append(sum(loss.generator_terms(batch, generated, fused).values()).item())
    assert values[1] == pytest.approx(3 * values[0])


# ---------------------------------------------------------------------------------------------
# Pix2PixHD L_B (Eq 1-4)

FEAT = (0.5, 2.0)            # the stub D's two feature layers: c_l * input
SCALES = (0.6, 1.4)          # score factor per scale (num_d = 2)
VGG_A = (1.0, 2.0, 3.0, 4.0, 5.0)
VGG_W = (0.03125, 0.0625, 0.125, 0.25, 1.0)
LAMBDAS = {"lambda_adv": 0.8, "lambda_feat": 1.7, "lambda_perc": 2.3}


class MultiscaleStub(nn.Module):
    """A fixed multiscale D: per scale s the features c_l * input and the score
    k_s * mean(image channels), one per sample."""

    def __init__(self):
        super().__init__()
        self.k = nn.Parameter(torch.tensor(SCALES))

    def forward(self, x):
        score = x[:, -3:].mean(dim=(1, 2, 3), keepdim=True)
        return [[c * x for c in FEAT] + [k * score] for k in self.k]


class VGGStub(nn.Module):
    """relu_i_1 features a_i * image."""
    pretrained, source = False, "stub"

    def forward(self, image):
        return [a * image for a in VGG_A]


def _pix2pixhd(on="raw"):
    loss = Pix2PixHDLoss(C, VGGStub(), ndf=4, n_layers=2, num_d=2, vgg_layer_weights=VGG_W,
                         on=on, **LAMBDAS)
    loss.discriminator = MultiscaleStub()
    return loss


@pytest.mark.parametrize("on", ["raw", "fused"])
def test_pix2pixhd_values_match_the_hand_computation(on):
    loss = _pix2pixhd(on)
    batch, generated = _batch()
    fused = batch.fuse(generated)
    image = _numpy(generated if on == "raw" else fused)
    target, condition = _numpy(batch.target), _numpy(batch.condition)
    mean_fake = image.mean(axis=(1, 2, 3))                   # per sample
    mean_real = target.mean(axis=(1, 2, 3))
    # Eq 2 (LSGAN): sum over the scales of mean_n (k_s m_n - 1)^2
    adversarial = sum(((k * mean_fake - 1) ** 2).mean() for k in SCALES)
    # Eq 3: sum over layers of L1 between the features of (Su, fake) and (Su, real), averaged
    # over the scales; the condition channels are equal and contribute 0 to the mean
    l1_pair = np.abs(np.concatenate([condition, image], 1)
                     - np.concatenate([condition, target], 1)).mean()
    matching = sum(sum(c * l1_pair for c in FEAT) for _ in SCALES) / len(SCALES)
    # Eq 4: sum_i w_i |E_i(fake) - E_i(real)|_1 (mean absolute difference)
    l1_image = np.abs(image - target).mean()
    perceptual = sum(w * a * l1_image for w, a in zip(VGG_W, VGG_A))
    terms = loss.generator_terms(batch, generated, fused)
    assert terms["G_adv"].item() == pytest.approx(LAMBDAS["lambda_adv"] * adversarial)
    assert terms["G_feat"].item() == pytest.approx(LAMBDAS["lambda_feat"] * matching)
    assert terms["G_perc"].item() == pytest.approx(LAMBDAS["lambda_perc"] * perceptual)
    d_terms = loss.discriminator_terms(batch, generated, fused)
    assert d_terms["D_fake"].item() == pytest.approx(
        0.5 * sum(((k * mean_fake) ** 2).mean() for k in SCALES))
    assert d_terms["D_real"].item() == pytest.approx(
        0.5 * sum(((k * mean_real - 1) ** 2).mean() for k in SCALES))


def test_feature_matching_is_averaged_over_the_scales():
    """With per-scale features that differ (scale 1 sees twice the input), the mean over
    scales of the per-scale sums is what Eq 3 with pix2pixHD's 1/num_D gives."""
    class TwoScales(MultiscaleStub):
        def forward(self, x):
            return [[c * x * (s + 1) for c in FEAT] + [k * x[:, -3:].mean((1, 2, 3), True)]
                    for s, k in enumerate(self.k)]

    loss = _pix2pixhd()
    loss.discriminator = TwoScales()
    batch, generated = _batch()
    pair = np.abs(_numpy(generated) - _numpy(batch.target)).sum() / (2 * (C + 3) * H * W)
    expected = sum(c * pair for c in FEAT) * (1 + 2) / 2
    value = loss.generator_terms(batch, generated, batch.fuse(generated))["G_feat"].item()
    assert value == pytest.approx(LAMBDAS["lambda_feat"] * expected)
