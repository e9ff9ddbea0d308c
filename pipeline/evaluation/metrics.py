"""Evaluation metrics: tIOU and hamm inside the edited box (paper §4.1; no public code exists,
definitions as in SPEC.md), SSIM and L1 of inpainted photos (Table 3) and FID through
pytorch-fid's Inception network.

Maps are integer label arrays (H, W); boxes are (x1, y1, x2, y2), half-open.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from unittest import mock

import numpy as np
import torch

from pipeline.models.networks import find_weights

log = logging.getLogger(__name__)

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"


def _crop(array: np.ndarray, box) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in box)
    if not (0 <= x1 < x2 <= array.shape[1] and 0 <= y1 < y2 <= array.shape[0]):
        raise ValueError(f"box {tuple(box)} is empty or outside a {array.shape[1]}x"
                         f"{array.shape[0]} map")
    return array[y1:y2, x1:x2]


def _boxed_pair(pred, target, box):
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    return _crop(pred, box), _crop(target, box)


def tiou(pred, target, box, label) -> float:
    """Target IoU: inside the box, |pred == l ∧ target == l| / |pred == l ∨ target == l|.

    When neither map has the label inside the box the union is empty; both maps then agree that
    the object is absent and tiou returns 1.0 (the value stays in [0, 1]). With the pipeline's
    test boxes this never happens: the box is the bounding box of a target-label instance.
    """
    pred_box, target_box = _boxed_pair(pred, target, box)
    predicted, actual = pred_box == label, target_box == label
    union = np.count_nonzero(predicted | actual)
    if union == 0:
        return 1.0
    return np.count_nonzero(predicted & actual) / union


def hamm(pred, target, box) -> float:
    """1 − normalised Hamming distance inside the box: the fraction of the box's pixels whose
    predicted label equals the ground truth (higher is better, as in the paper's tables)."""
    pred_box, target_box = _boxed_pair(pred, target, box)
    return np.count_nonzero(pred_box == target_box) / pred_box.size


#---------------------------------------------------------------------------------------------
# Inpainting (Table 3): SSIM and L1 of a completed photo against the ground truth
#
# Convention: both are taken over the hole, the only pixels a row changes (outside it the fused
# output is the input photo, bit for bit). A whole-image score is the hole score diluted by the
# hole's share of the image, which varies from hole to hole; the GL code the paper points to
# scores the crop of the hole too (its L1 on [-1, 1] x 100, its SSIM on that crop). Images are
# (H, W, 3) uint8; the hole is (x1, y1, x2, y2), half-open. The *_image variants score the
# whole image (reported beside, for comparison).


def _win_size(crop: np.ndarray) -> int:
    """skimage's default 7x7 window, shrunk to the largest odd size that fits a small hole."""
    side = min(crop.shape[0], crop.shape[1], 7)
    return side if side % 2 else side - 1


def ssim(pred, target) -> float:
    """SSIM of two (h, w, 3) uint8 images: skimage.metrics.structural_similarity, data range
    255, per channel and averaged, uniform 7x7 window (smaller for a hole under 7 px)."""
    from skimage.metrics import structural_similarity
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    window = _win_size(pred)
    if window < 3:
        raise ValueError(f"SSIM needs at least 3x3 pixels, got {pred.shape[1]}x{pred.shape[0]}")
    return float(structural_similarity(pred, target, win_size=window, data_range=255,
                                       channel_axis=-1))


def l1(pred, target) -> float:
    """Mean absolute difference on the 0-255 scale over all pixels and channels."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    return float(np.abs(pred.astype(np.float64) - target.astype(np.float64)).mean())


def hole_ssim(pred, target, hole) -> float:
    """SSIM of the crop of the hole."""
    pred_hole, target_hole = _boxed_pair(pred, target, hole)
    return ssim(pred_hole, target_hole)


def hole_l1(pred, target, hole) -> float:
    """L1 (0-255) over the hole's pixels and channels."""
    pred_hole, target_hole = _boxed_pair(pred, target, hole)
    return l1(pred_hole, target_hole)


#---------------------------------------------------------------------------------------------
# FID


@contextlib.contextmanager
def _hub_dir_with(path: str):
    """A temporary torch hub dir whose checkpoint cache holds `path` under pytorch-fid's name."""
    previous = torch.hub.get_dir()
    tmp = tempfile.mkdtemp()
    os.makedirs(os.path.join(tmp, "checkpoints"))
    os.symlink(os.path.abspath(path), os.path.join(tmp, "checkpoints", INCEPTION_FILE))
    torch.hub.set_dir(tmp)
    try:
        yield
    finally:
        torch.hub.set_dir(previous)
        shutil.rmtree(tmp, ignore_errors=True)


class FIDScorer:
    """pytorch-fid's InceptionV3 (pool3 for dims 2048) + Fréchet distance.

    With the real weights (explicit path or the torch hub cache) `metric_name` is "fid". Without
    them the same network runs with a fixed random initialisation, which measures nothing
    comparable to FID: the Fréchet distance is then taken on its first block (64-d; a random
    network's pool3 features collapse to a constant), the name is
    "fid_standin_random_inception_64d" and a warning is logged.
    """

    def __init__(self, dims: int = 2048, weights_path: str = "", device="cpu"):
        from pytorch_fid import inception
        self.dims, self.device = dims, torch.device(device)
        path = find_weights(weights_path, INCEPTION_FILE)
        self.pretrained = path is not None
        if self.pretrained:
            with _hub_dir_with(path):
                self.model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]])
            self.metric_name, self.source = "fid", path
        else:
            log.warning("FID Inception weights %s not found (give evaluate.inception_weights_path"
                        " or put it in %s): reporting 'fid_standin_random_inception_64d', "
                        "which is NOT an FID", INCEPTION_FILE,
                        os.path.join(torch.hub.get_dir(), "checkpoints"))
            generator = torch.Generator().manual_seed(0)
            with torch.random.fork_rng():
                torch.manual_seed(int(torch.randint(0, 2 ** 31, (1,), generator=generator)))
                shapes = inception._inception_v3(num_classes=1008, aux_logits=False,
                                                 weights=None).state_dict()
                with mock.patch.object(inception, "load_state_dict_from_url",
                                       return_value=shapes):
                    self.model = inception.InceptionV3([0])
            self.dims = 64
            self.metric_name = "fid_standin_random_inception_64d"
            self.source = "STAND-IN: random-init InceptionV3 (no " + INCEPTION_FILE + ")"
        self.model.to(self.device).eval()

    @torch.no_grad()
    def features(self, images_uint8: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, dims) activations (inputs bilinearly resized to 299)."""
        out = []
        for start in range(0, len(images_uint8), batch_size):
            batch = torch.from_numpy(images_uint8[start:start + batch_size]).permute(0, 3, 1, 2)
            batch = batch.float().div(255).to(self.device)
            features = self.model(batch)[0]
            if features.shape[-2:] != (1, 1):  # blocks before pool3 are spatial (pytorch-fid)
                features = torch.nn.functional.adaptive_avg_pool2d(features, (1, 1))
            out.append(features.squeeze(-1).squeeze(-1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def distance(self, real_features: np.ndarray, fake_features: np.ndarray) -> float:
        from pytorch_fid.fid_score import calculate_frechet_distance
        if len(real_features) < 2 or len(fake_features) < 2:
            raise ValueError("FID needs at least 2 images per set")
        return float(calculate_frechet_distance(
            real_features.mean(0), np.cov(real_features, rowvar=False),
            fake_features.mean(0), np.cov(fake_features, rowvar=False)))
