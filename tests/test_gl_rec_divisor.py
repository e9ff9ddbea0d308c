"""GL's L_rec divisor (inpainting_rows.<row>.rec_divisor, issue 34): the squared error summed
over the hole, divided by the hole's pixels x channels (`hole`, ours) or by every pixel and
channel of the batch (`image`, the authors' facade code and otenim/GLCIC-PyTorch). Values
written out by hand; the weight is not 1 and the two samples' holes differ in size, so a
divisor that drops the channels, counts one sample's hole or the wrong image shows."""
import os

import numpy as np
import pytest
import torch

from pipeline.config.loading import load_params
from pipeline.config.sections import ParamsError
from pipeline.config.validation import parse_params
from pipeline.models.inpainting import ReconstructionLoss
from pipeline.kinds.inpainting import InpaintingKind
from pipeline.models.losses import GanBatch
from tiny_project import tiny_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hand_batch():
    """2 samples, 3 channels, 2x4 pixels; target 0. Sample 0: hole (0, 0, 2, 1) = 2 pixels, C's
    output 1 everywhere; sample 1: hole (1, 0, 4, 2) = 6 pixels, C's output 2 everywhere (and 7
    outside the holes, which no divisor may count)."""
    generated = torch.full((2, 3, 2, 4), 7.0)
    mask = torch.zeros(2, 1, 2, 4)
    mask[0, :, 0:1, 0:2] = 1
    mask[1, :, 0:2, 1:4] = 1
    generated = torch.where(mask.bool(), torch.tensor([1.0, 2.0]).view(2, 1, 1, 1), generated)
    batch = GanBatch(condition=torch.zeros(2, 4, 2, 4), target=torch.zeros(2, 3, 2, 4),
                     mask=mask, boxes=((0, 0, 2, 1), (1, 0, 4, 2)))
    return batch, generated


@pytest.mark.parametrize("kind, divisor, expected", [
    # mse: hole sum = 2 px * 3 ch * 1² + 6 px * 3 ch * 2² = 6 + 72 = 78
    ("mse", "hole", 2.5 * 78 / 24),    # hole pixels x channels = (2 + 6) * 3 = 24 -> 8.125
    ("mse", "image", 2.5 * 78 / 48),   # every pixel and channel = 2 * 3 * 2 * 4 = 48 -> 4.0625
    # l1: hole sum = 6 * 1 + 18 * 2 = 42
    ("l1", "hole", 2.5 * 42 / 24),     # 4.375
    ("l1", "image", 2.5 * 42 / 48),    # 2.1875
])
def test_reconstruction_loss_divides_the_hole_sum_by_its_divisor(kind, divisor, expected):
    batch, generated = hand_batch()
    loss = ReconstructionLoss(kind, weight=2.5, divisor=divisor)
    value = loss.generator_terms(batch, generated, None)["G_rec"]
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_the_image_divisor_weakens_l_rec_by_the_image_to_hole_ratio():
    batch, generated = hand_batch()
    hole = ReconstructionLoss("mse", 1.0, "hole").generator_terms(batch, generated, None)
    image = ReconstructionLoss("mse", 1.0, "image").generator_terms(batch, generated, None)
    # 48 values in the batch, 24 of them in the holes
    assert (hole["G_rec"] / image["G_rec"]).item() == pytest.approx(2.0)


def test_an_unknown_divisor_is_refused():
    with pytest.raises(ValueError, match="divisor 'pixels'"):
        ReconstructionLoss("mse", divisor="pixels")


def test_each_row_of_params_yaml_trains_with_its_divisor():
    """The authors' reading uses theirs (image); GL and our GL+A-MEx keep the hole (so their
    committed metrics do not change)."""
    params = load_params(os.path.join(REPO, "params.yaml"))
    photos = np.random.default_rng(0).integers(0, 256, (2, 46, 48, 3), dtype=np.uint8)
    found = {}
    for name, row in params.inpainting_rows.items():
        _, losses, _ = InpaintingKind().build(params, row, photos, seed=0)
        found[name] = [p.divisor for p in losses if p.name == "reconstruction"]
    assert found == {"gl-facade": ["hole"], "gl-amex-facade": ["hole"],
                     "gl-amex-authors-facade": ["image"]}


def test_params_refuse_a_bad_divisor_naming_the_key():
    raw = tiny_params()
    raw["inpainting_rows"] = {"gl-facade": {"loss": "gl", "rec_divisor": "pixels"}}
    with pytest.raises(ParamsError, match=r"inpainting_rows\.gl-facade\.rec_divisor"):
        parse_params(raw)
    raw["inpainting_rows"] = {"gl-facade": {"loss": "gl", "rec_divisr": "image"}}
    with pytest.raises(ParamsError, match=r"inpainting_rows\.gl-facade\.rec_divisr: unknown"):
        parse_params(raw)
