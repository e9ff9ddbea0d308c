"""The evaluation path end to end on a hand-made case: a generator stub whose output is known
-> Eq 5 fusion -> colour to labels (nearest palette colour) -> tIOU / hamm with each test image's
own box and label -> the mean over images, through pipeline.evaluation.evaluation.evaluate (the `evaluate`
stage's library side). Also: the FID stand-in's key is never `fid`.

Two 16x32 Cityscapes test maps (road 7 everywhere, one car 26001), their test boxes written by
hand. The stub paints car (26) in rows 0-7 and road (7) in rows 8-15, in colours a few units off
the palette; only the box survives the fusion.

  image a: car = rows 3-9, cols 4-11 (a rectangle); box (4, 3, 12, 10), 7 x 8 = 56 pixels
           predicted car: rows 3-7 = 40 pixels; truth car: all 56
           tIOU = 40 / 56 = 5/7, hamm = 40 / 56 = 5/7
  image b: car = rows 6-11, cols 20-27 minus rows 10-11, cols 24-27 (road); box (20, 6, 28, 12)
           predicted car: rows 6-7 = 16 pixels; truth car: 48 - 8 = 40 pixels
           tIOU = 16 / 40 = 0.4; hamm = (16 car rows 6-7 + 8 road rows 10-11, cols 24-27) / 48
"""
import numpy as np
import pytest
import torch
import torch.nn as nn

from pipeline.evaluation import evaluation
from pipeline.config.validation import parse_params
from pipeline.data.datasets import SplitArrays, write_split
from pipeline.data.sets import get_spec
from pipeline.data.inputs import BOX_COLUMNS, TEST_BOX_COLUMNS, write_csv
from pipeline.kinds.structure import StructureKind
from tiny_project import tiny_params

H, W = 16, 32
ROAD, CAR = 7, 26
ROW = "mexgan-cityscapes"
EXPECTED = {"a": (5 / 7, 5 / 7), "b": (0.4, 0.5)}
BOXES = {"a": (4, 3, 12, 10), "b": (20, 6, 28, 12)}


def _maps():
    labels = np.full((2, H, W), ROAD, dtype=np.int64)
    labels[0, 3:10, 4:12] = CAR
    labels[1, 6:12, 20:28] = CAR
    labels[1, 10:12, 24:28] = ROAD
    instances = np.where(labels == CAR, CAR * 1000 + 1, labels)
    photos = np.random.RandomState(0).randint(0, 256, (2, H, W, 3)).astype(np.uint8)
    return labels, instances, photos


class PaintStub(nn.Module):
    """Ỹ: car colour in the top half, road colour in the bottom half, each off the palette by
    (+3, -2, +1) (clamped to [0, 255] when turned into a map), whatever the input."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))   # evaluation reads the device from it
        palette = get_spec("cityscapes").palette.astype(np.float64)
        image = np.zeros((3, H, W))
        image[:, :H // 2] = (palette[CAR] + [3, -2, 1])[:, None, None]
        image[:, H // 2:] = (palette[ROAD] + [3, -2, 1])[:, None, None]
        self.register_buffer("image", torch.tensor(image / 127.5 - 1, dtype=torch.float32))

    def forward(self, condition):
        return self.image.expand(condition.shape[0], -1, -1, -1)


class PhotoStub(nn.Module):
    """G_I: returns the colour map as the 'photo'."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, colour):
        return colour


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    data = root / "data" / "cityscapes"
    data.mkdir(parents=True)
    labels, instances, photos = _maps()
    for split in ("train", "test"):
        write_split(str(data / f"{split}.h5"), SplitArrays(["a", "b"], labels, instances, photos))
    write_csv(str(data / "test_boxes.csv"), TEST_BOX_COLUMNS,
              [[name, CAR, *box, 0.1] for name, box in BOXES.items()])
    write_csv(str(data / "boxes.csv"), BOX_COLUMNS,
              [["train", name, CAR, *box, 0.1] for name, box in BOXES.items()])
    models = root / "models"
    for folder in (models / ROW / "seed0", models / "translator-cityscapes"):
        folder.mkdir(parents=True)
        (folder / "train_summary.json").write_text('{"q": 1, "seed": 0, "vgg_source": "stub"}')
    params = parse_params(tiny_params(seeds=[0]))

    def load(model_dir, device, **checks):  # (dataset, kinds: what the real one checks)
        return (PhotoStub() if "translator" in str(model_dir) else PaintStub()).to(device)

    kind = StructureKind(data_root=str(root / "data"), model_root=str(models))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "get_dir", lambda: str(root / "hub"))  # no Inception weights
        test_set = kind.test_set(params, "cityscapes", torch.device("cpu"),
                                 lambda folder, dataset: load(folder, "cpu"))
        return evaluation.evaluate(params, {ROW: kind}, {"cityscapes": test_set},
                                   device=torch.device("cpu"), load=load,
                                   samples_dir=str(root / "samples"), progress=False), root


def test_per_box_scores_are_the_hand_computed_ones(evaluated):
    result, _ = evaluated
    scores = {s["image"]: (s["tiou"], s["hamm"]) for s in result["scores"] if s["row"] == ROW}
    assert set(scores) == {"a", "b"}
    for image, (tiou, hamm) in EXPECTED.items():
        assert scores[image] == pytest.approx((tiou, hamm))


def test_row_metrics_are_the_means_over_images(evaluated):
    result, _ = evaluated
    row = result["rows"][ROW]
    assert row["tiou"] == pytest.approx((5 / 7 + 0.4) / 2)
    assert row["hamm"] == pytest.approx((5 / 7 + 0.5) / 2)
    assert row["test_boxes"] == 2 and row["seeds"] == 1


def test_fused_map_is_the_stub_inside_the_box_and_the_truth_outside(evaluated):
    _, root = evaluated
    samples = np.load(root / "samples" / f"{ROW}.npz")
    palette = get_spec("cityscapes").palette
    labels, _, _ = _maps()
    for index, (x1, y1, x2, y2) in enumerate(BOXES.values()):
        fused = samples["fused"][index].astype(int)
        inside = np.zeros((H, W), dtype=bool)
        inside[y1:y2, x1:x2] = True
        truth = palette[labels[index]].astype(int)
        assert (fused[~inside] == truth[~inside]).all()
        top = np.arange(H)[:, None].repeat(W, 1) < H // 2
        stub = np.clip(np.where(top[..., None], palette[CAR], palette[ROAD]).astype(int)
                       + [3, -2, 1], 0, 255)          # car (0, 0, 142): green clamps at 0
        assert (fused[inside] == stub[inside]).all()


def test_the_fid_standin_is_never_stored_as_fid(evaluated):
    result, _ = evaluated
    assert result["conditions"]["fid_metric"] == "fid_standin_random_inception_64d"
    for name, metrics in result["rows"].items():
        assert "fid" not in metrics, name
    assert "fid_standin_random_inception_64d" in result["rows"][ROW]
