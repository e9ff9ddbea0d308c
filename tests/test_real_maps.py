"""Real label maps (issue 31): the video-folder reader split by sequence, the bilinear
resampling of TwoSM's streams onto the map's own pixels, the blocky-box test and the
sequence-level bootstrap of stages.real_maps."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.data.sets.cityscapes import cityscapes_train_only, sequence_of, split_by_sequence
from pipeline.data.raw_datasets import load_raw
from pipeline.apps.real_maps import (RealBox, blocky_mask, box_scores, cluster_difference,
                                eligible_boxes, gtfine_frames, video_frames)
from pipeline.models.twosm_prediction import bilinear_matrix, upsampled_labels
from tests.shared_data import shared_path

VIDEO = shared_path("cityscapes_video")
GTFINE = shared_path("cityscapes")
HELD_OUT = video_frames(VIDEO, ["aachen_000005"])  # read once: 180 frames at 2048x1024


def test_sequence_of_and_split_by_sequence():
    names = ["aachen_000000_000001", "aachen_000000_000002", "aachen_000004_000000",
             "bonn_000004_000003"]
    assert sequence_of(names[0]) == "aachen_000000"
    train, test = split_by_sequence(names, ["aachen_000004"])
    assert (train, test) == ([0, 1, 3], [2])  # bonn_000004 is another sequence
    with pytest.raises(ValueError, match="aachen_000009 not in"):
        split_by_sequence(names, ["aachen_000009"])
    with pytest.raises(ValueError, match="empty train split"):
        split_by_sequence(names[:2], ["aachen_000000"])


def test_video_folder_reads_as_train_only_and_splits_whole_sequences():
    assert cityscapes_train_only(VIDEO)
    with pytest.raises(ValueError, match="data.val_sequences"):
        load_raw("cityscapes", VIDEO, progress=False)
    train, test = HELD_OUT
    assert len(test.names) == 30 and len(train.names) == 150
    assert set(test.sequences) == {"aachen_000005"}
    assert "aachen_000005" not in set(train.sequences)
    assert test.labels.shape == (30, 128, 256)
    # JPEG photos of the video folder are read too (the reader returns them beside the maps)
    splits = load_raw("cityscapes", VIDEO, val_sequences=["aachen_000005"], progress=False)
    assert splits["test"].photos.shape == (30, 128, 256, 3) and splits["test"].photos.std() > 10
    assert np.array_equal(splits["test"].labels, test.labels)


def test_gtfine_frames_of_held_out_sequences_only():
    frames = gtfine_frames(GTFINE, ["aachen_000004", "aachen_000005"])
    assert frames.names == ["aachen_000004_000019", "aachen_000005_000019"]
    assert gtfine_frames(GTFINE, ["aachen_000099"]) is None


@pytest.mark.parametrize("out_size,in_size", [(10, 4), (7, 7), (3, 8), (1, 5)])
def test_bilinear_matrix_matches_f_interpolate(out_size, in_size):
    signal = torch.randn(1, 1, in_size, 1, dtype=torch.float64)
    expected = F.interpolate(signal, size=(out_size, 1), mode="bilinear",
                             align_corners=False)[0, 0, :, 0]
    assert torch.allclose(bilinear_matrix(out_size, in_size) @ signal[0, 0, :, 0], expected)


def test_upsampled_labels_banded_equals_whole_interpolation():
    torch.manual_seed(3)
    context, mask = torch.randn(5, 6, 9), torch.randn(6, 9)
    size = (37, 50)
    whole = F.interpolate(torch.cat([context, mask[None]])[None].double(), size=size,
                          mode="bilinear", align_corners=False)[0]
    rows, cols = (5, 30), (11, 47)
    labels, painted = upsampled_labels(context, mask, size, rows, cols, chunk_pixels=40)
    assert np.array_equal(labels, whole[:-1, 5:30, 11:47].argmax(0).numpy())
    assert np.array_equal(painted, whole[-1, 5:30, 11:47].numpy() > 0.5)
    # at the logits' own size nothing is resampled
    same, _ = upsampled_labels(context, mask, (6, 9), (1, 4), (2, 8))
    assert np.array_equal(same, context[:, 1:4, 2:8].argmax(0).numpy())


def test_blocky_mask():
    mask = np.zeros((16, 24), bool)
    mask[4:12, 8:16] = True                  # drawn in 4-px blocks
    assert blocky_mask(mask, (2, 2, 22, 14))
    mask[5, 9] = False                       # one pixel off a block
    assert not blocky_mask(mask, (2, 2, 22, 14))
    assert not blocky_mask(mask, (20, 0, 23, 3))   # no whole tile inside: not blocky
    smooth = np.fromfunction(lambda y, x: (x - 12) ** 2 + (y - 8) ** 2 < 30, (16, 24))
    assert not blocky_mask(smooth, (0, 0, 24, 16))


def test_cluster_difference_resamples_sequences():
    # two sequences, each with a constant difference: the interval spans the two means
    a = np.array([0.9, 0.9, 0.9, 0.5, 0.5])
    b = np.zeros(5)
    estimate = cluster_difference(a, b, ["s1", "s1", "s1", "s2", "s2"], resamples=999)
    assert estimate.mean == pytest.approx(0.74)
    assert estimate.low == pytest.approx(0.5) and estimate.high == pytest.approx(0.9)
    # paired: a constant offset has a zero-width interval
    offset = cluster_difference(a + 0.25, a, ["s1", "s1", "s1", "s2", "s2"], resamples=99)
    assert (offset.low, offset.mean, offset.high) == pytest.approx((0.25, 0.25, 0.25))


def test_box_scores_by_hand():
    labels = np.zeros((1, 8, 8), np.int64)
    labels[0, 2:6, 2:6] = 26
    frames = type("F", (), {"labels": labels})()
    box = RealBox(0, "s", (2, 2, 6, 6), 26)
    predicted = labels[0].copy()
    predicted[2:4, 2:6] = 7                     # half the car painted road
    assert box_scores(frames, [box], [predicted]).tolist() == [0.5]


def test_eligible_boxes_use_the_tight_rule():
    _, test = HELD_OUT
    tight = eligible_boxes(test, 0.02, "tight")
    authors = eligible_boxes(test, 0.02, "authors")
    assert tight and all(test.instances[b.frame][b.box[1]:b.box[3], b.box[0]:b.box[2]].max()
                         >= 1000 for b in tight)
    assert len(authors) >= len(tight)


class Disk(torch.nn.Module):
    """A TwoSM generator by hand: the mask stream is a smooth bump centred in the box mask
    channel (the last input channel), > 0.5 on a disk; the context stream says road (7)."""
    label_rule = "painted_mask"

    def forward(self, x):
        from pipeline.data.sets import get_spec
        box = x[:, -1:]
        height, width = x.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                torch.arange(width, dtype=torch.float32), indexing="ij")
        weight = box[0, 0]
        cy, cx = (ys * weight).sum() / weight.sum(), (xs * weight).sum() / weight.sum()
        radius = 0.5 * min(weight.sum(0).max(), weight.sum(1).max())
        bump = 1 - ((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * radius ** 2)
        out = torch.zeros(x.shape[0], 1 + get_spec("cityscapes").num_labels, height, width)
        out[:, 0] = bump
        out[:, 1 + 7] = 1.0
        return out


@pytest.mark.parametrize("observation", ["full", "local"])
def test_twosm_editor_draws_the_box_at_the_maps_own_resolution(observation):
    """A model of 32x16 edits a 256x128 map: the object it draws has round edges at the map's
    pixels, not 8x8 blocks of the model's pixels (the editor used to resize the whole map to
    the model's size and back)."""
    from pipeline.apps.editing import Edit, Editor
    from pipeline.models.model_files import model_metadata
    from pipeline.models.twosm_views import Observation
    generator = Disk()
    generator.meta = model_metadata("twosm", "cityscapes", 32, 16, "hand", 37, "-", "-")
    generator.observation = Observation(observation, 16)
    generator.parameters = lambda: iter([torch.zeros(1)])
    editor = Editor(generator)
    labels = np.full((128, 256), 7, dtype=np.int64)
    box = (64, 32, 160, 96)
    edited = editor.apply(labels, [Edit(box, "car")]).labels
    car = edited == 26
    assert car.any() and not car[:32].any() and not car[:, :64].any()
    assert not blocky_mask(car, box, block=8)
    # the disk's edge crosses rows at many columns: a round shape, not a few coarse steps
    widths = car[32:96, 64:160].sum(1)
    assert len(set(widths[widths > 0].tolist())) > 12


class _StubEditor:
    """Editor.apply's contract: 'truth' returns the map as it is (tIOU 1), 'fill' paints the
    whole box with the label (what the fill-box floor draws)."""
    def __init__(self, row):
        self.row = row

    def apply(self, labels, edits, instances):
        from types import SimpleNamespace
        out = labels.copy()
        if self.row == "fill":
            x0, y0, x1, y1 = edits[0].box
            out[y0:y1, x0:x1] = edits[0].label
        return SimpleNamespace(labels=out)


def test_score_set_pairs_every_row_with_a_versus_model_and_renders_its_columns():
    from pipeline.apps.real_maps_report import markdown, score_set
    train, test = HELD_OUT
    result = score_set(test, train, {"truth": _StubEditor("truth"), "fill": _StubEditor("fill")},
                       0.02, "tight", None, progress=False, versus=("fill",))
    rows = result["rows"]
    # the stub that paints the box is the fill-box floor, box for box
    assert rows["fill"]["minus_fill-box"]["by_box"]["mean"] == 0
    assert rows["fill"]["tiou"]["mean"] == rows["fill-box"]["tiou"]["mean"]
    # truth − fill = 1 − the fill-box floor's mean, paired by box and by sequence
    gap = round(1 - rows["fill-box"]["tiou"]["mean"], 4)
    assert rows["truth"]["minus_fill"]["by_box"]["mean"] == pytest.approx(gap, abs=1e-4)
    assert rows["truth"]["minus_fill"]["by_sequence"]["mean"] == pytest.approx(gap, abs=1e-4)
    assert "minus_fill" not in rows["fill"]
    text = markdown({"held-out": result}, {"raw": "video", "val_sequences": ["aachen_000005"],
                                            "rule": "tight", "threshold": 0.02,
                                            "versus": ["fill"]})
    assert "| − fill (by sequence) | − fill (by box) | blocky |" in text
    line = next(line for line in text.splitlines() if line.startswith("| truth |"))
    assert f"+{gap:.3f} [" in line.split(" | ")[5]
