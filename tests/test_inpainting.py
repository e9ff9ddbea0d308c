"""Table 3 (GL / GL+A-MEx inpainting): hole geometry, the local patch at the borders, stride
padding, GL's training phases in the one trainer (which networks learn in each), the SSIM / L1
conventions on known pairs, the inpainting floors, config errors, and a tiny train + evaluate
of both rows."""
import os
import tempfile

import numpy as np
import pytest
import torch

from pipeline.training import trainer
from pipeline.config.sections import ParamsError
from pipeline.config.validation import parse_params
from pipeline.evaluation.evaluation import InpaintingTestSet
from pipeline.kinds import evaluate_table
from pipeline.evaluation.floors import biharmonic_fill, mean_fill
from pipeline.models.inpainting import (CompletionNetwork, InpaintingTask, draw_hole,
                                 hole_mask, hole_side_range, inpainting_batch, local_patch,
                                 local_patches, read_test_holes, stride_padding)
from pipeline.models.losses import AMExLoss, expanded_masks
from pipeline.evaluation.metrics import hole_l1, hole_ssim, l1, ssim
from pipeline.data.preparation import prepare_dataset
from pipeline.kinds import load_generator
from pipeline.kinds import train_row
from pipeline.kinds.inpainting import build_gl, gl_phases
from pipeline.data.synthetic import generate_split
from pipeline.training.trainer import Phase, phase_at
from tiny_project import prepare_tiny_facades, tiny_params

#---------------------------------------------------------------------------------------------
# Holes


def test_training_holes_have_the_configured_sides_and_lie_inside_the_image():
    rng = np.random.default_rng(0)
    for _ in range(300):
        x1, y1, x2, y2 = draw_hole(rng, 48, 46, (0.375, 0.5))
        assert 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 46
        assert 18 <= x2 - x1 <= 24 and 17 <= y2 - y1 <= 23
    assert hole_side_range(248, 0.375, 0.5) == (93, 124)


def test_training_holes_and_flips_are_a_function_of_seed_and_epoch():
    photos = generate_split("facade", "train", 5, 22, 24, seed=0).photos
    task = InpaintingTask(photos, fill=(100, 100, 100), hole=(0.3, 0.5), batch_size=2,
                          flip=True, seed=3)
    first = [b.boxes for b in task.epoch(1, "cpu")]
    assert first == [b.boxes for b in task.epoch(1, "cpu")]
    assert first != [b.boxes for b in task.epoch(2, "cpu")]
    assert len(first) == len(task) == 3


def test_batch_fills_the_hole_with_the_mean_colour_and_masks_it():
    photos = np.full((1, 6, 8, 3), 200, dtype=np.uint8)
    batch = inpainting_batch(photos, [(2, 1, 5, 4)], (127.5, 0, 255), "cpu")
    assert batch.condition.shape == (1, 4, 6, 8)
    assert batch.mask[0, 0].sum() == 9 and batch.mask[0, 0, 1, 2] == 1
    assert torch.allclose(batch.condition[0, :3, 2, 3], torch.tensor([0.0, -1.0, 1.0]))
    assert torch.allclose(batch.condition[0, :3, 0, 0], torch.full((3,), 200 / 127.5 - 1))
    assert torch.equal(batch.condition[0, 3], batch.mask[0, 0])
    np.testing.assert_array_equal(hole_mask([(2, 1, 5, 4)], 6, 8)[0], batch.mask[0, 0].numpy())


def test_test_holes_are_twenty_per_image_and_the_same_for_every_reader(tmp_path):
    splits = {s: generate_split("facade", s, n, 22, 24, seed=0) for s, n in
              (("train", 3), ("test", 2))}
    prepare_dataset("facade", splits, str(tmp_path / "d"), width=24, height=22,
                    threshold=0.0003, box_rule="authors", source="synthetic")
    names = splits["test"].names
    holes = read_test_holes(str(tmp_path / "d" / "test_masks.csv"), names, 24, 22, 20)
    assert len(holes) == 40 and [r for n, r, _ in holes if n == names[0]] == list(range(20))
    again = read_test_holes(str(tmp_path / "d" / "test_masks.csv"), names, 24, 22, 20)
    assert holes == again
    with pytest.raises(ValueError, match="has 20 holes, expected 5"):
        read_test_holes(str(tmp_path / "d" / "test_masks.csv"), names, 24, 22, 5)
    with pytest.raises(ValueError, match="outside the 10x22 image"):
        read_test_holes(str(tmp_path / "d" / "test_masks.csv"), names, 10, 22, 20)


#---------------------------------------------------------------------------------------------
# Local patch and stride padding


def test_local_patch_is_centred_on_the_hole_away_from_the_borders():
    assert local_patch((20, 20, 30, 30), 20, 16, 64, 64) == (15, 17, 35, 33)


@pytest.mark.parametrize("hole, window", [
    ((0, 0, 5, 4), (0, 0, 12, 10)),          # top-left corner
    ((40, 38, 48, 46), (36, 36, 48, 46)),    # bottom-right corner
    ((44, 0, 48, 6), (36, 0, 48, 10)),       # top-right corner
])
def test_local_patch_at_the_borders_is_shifted_inside_the_image(hole, window):
    assert local_patch(hole, 12, 10, 48, 46) == window


def test_local_patch_always_contains_a_hole_that_fits_and_stays_in_the_image():
    rng = np.random.default_rng(1)
    for _ in range(500):
        width, height = int(rng.integers(8, 40)), int(rng.integers(8, 40))
        pw, ph = int(rng.integers(1, width + 1)), int(rng.integers(1, height + 1))
        w, h = int(rng.integers(1, pw + 1)), int(rng.integers(1, ph + 1))
        x1, y1 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        left, top, right, bottom = local_patch((x1, y1, x1 + w, y1 + h), pw, ph, width, height)
        assert (right - left, bottom - top) == (pw, ph)
        assert 0 <= left <= x1 and x1 + w <= right <= width
        assert 0 <= top <= y1 and y1 + h <= bottom <= height
    with pytest.raises(ValueError, match="outside"):
        local_patch((40, 0, 50, 5), 10, 10, 48, 46)


def test_local_patches_crop_each_sample_around_its_own_hole():
    images = torch.arange(2 * 3 * 8 * 10, dtype=torch.float32).view(2, 3, 8, 10)
    crops = local_patches(images, [(0, 0, 2, 2), (8, 6, 10, 8)], (4, 4))
    assert crops.shape == (2, 3, 4, 4)
    assert torch.equal(crops[0], images[0, :, 0:4, 0:4])
    assert torch.equal(crops[1], images[1, :, 4:8, 6:10])


def test_stride_padding_splits_the_extra_pixels():
    assert stride_padding(242, 4) == (1, 1) and stride_padding(248, 4) == (0, 0)
    assert stride_padding(23, 4) == (0, 1) and stride_padding(22, 8) == (1, 1)


@pytest.mark.parametrize("height, width", [(22, 23), (242, 248), (16, 16)])
def test_completion_network_keeps_any_size_by_padding_to_its_stride(height, width):
    torch.manual_seed(0)
    net = CompletionNetwork(ngf=2, n_downsampling=2, dilations=(2,)).eval()
    x = torch.randn(1, 4, height, width)
    out = net(x)
    assert out.shape == (1, 3, height, width)
    top, bottom = stride_padding(height, 4)
    left, right = stride_padding(width, 4)
    padded = torch.nn.functional.pad(x, (left, right, top, bottom), mode="replicate")
    expected = net.model(padded)[..., top:top + height, left:left + width]
    assert torch.equal(out, expected)  # the scored region is cropped back, never resized


#---------------------------------------------------------------------------------------------
# Phases in the one trainer


def test_phase_at_selects_phases_by_step_range():
    phases = (Phase("a", 3), Phase("b", 2), Phase("c"))
    assert [phase_at(phases, s)[1].name for s in range(7)] == list("aaabbcc")
    assert phase_at((Phase("a", 2),), 5) == (0, Phase("a", 2))


def test_gl_phases_name_the_plugins_of_each_phase():
    params = parse_params(tiny_params())
    _, plugins = build_gl("gl_amex", params, 22, 24)
    completion, discriminators, joint = gl_phases(4, 2, plugins)
    assert completion == Phase("completion", 4, ("reconstruction",), ())
    assert discriminators == Phase("discriminator", 2, (), ("global_local", "amex"))
    assert joint == Phase("joint")
    assert [p.name for p in gl_phases(0, 0, plugins)] == ["joint"]
    with pytest.raises(ValueError, match="no loss plug-in 'mex'"):
        trainer.check_phases((Phase("x", None, ("mex",)),), plugins)


class _Batches:
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def epoch(self, epoch, device):
        yield from self.batches


def _weights(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("phase, generator_learns, discriminators_learn", [
    (Phase("completion", None, ("reconstruction",), ()), True, False),
    (Phase("discriminator", None, (), ("global_local", "amex")), False, True),
    (Phase("joint"), True, True),
])
def test_which_networks_learn_in_each_gl_phase(phase, generator_learns, discriminators_learn):
    torch.manual_seed(0)
    params = parse_params(tiny_params())
    generator, plugins = build_gl("gl_amex", params, 22, 24)
    photos = generate_split("facade", "train", 2, 22, 24, seed=0).photos
    batch = inpainting_batch(photos, [(2, 2, 12, 11), (10, 8, 22, 20)], (100, 100, 100), "cpu")
    before_g = _weights(generator)
    before_d = [_weights(p) for p in plugins[1:]]
    with tempfile.TemporaryDirectory() as out:
        trainer.train(generator=generator, losses=plugins, task=_Batches([batch]), epochs=1,
                      lr=1e-2, betas=(0.9, 0.999), device=torch.device("cpu"), out_dir=out,
                      progress=False, phases=(phase,))
    assert _changed(before_g, generator) == generator_learns
    for before, plugin in zip(before_d, plugins[1:]):  # the context D and the A-MEx D
        assert _changed(before, plugin) == discriminators_learn, plugin.name


class _Interrupt(Exception):
    pass


class _StopAt:
    """The task, interrupted when batch `stop` of epoch `epoch` is requested (a killed run)."""

    def __init__(self, task, epoch, stop):
        self.task, self.stop_epoch, self.stop = task, epoch, stop

    def __len__(self):
        return len(self.task)

    def epoch(self, epoch, device):
        for index, batch in enumerate(self.task.epoch(epoch, device)):
            if (epoch, index) == (self.stop_epoch, self.stop):
                raise _Interrupt
            yield batch


def test_a_run_interrupted_in_the_discriminator_phase_resumes_bit_exact(tmp_path):
    params = parse_params(tiny_params())
    photos = generate_split("facade", "train", 4, 22, 24, seed=0).photos
    task = InpaintingTask(photos, fill=(100, 100, 100), hole=(0.3, 0.5), batch_size=2,
                          flip=True, seed=0)

    def run(out, data):
        torch.manual_seed(0)
        generator, plugins = build_gl("gl_amex", params, 22, 24)
        summary = trainer.train(generator=generator, losses=plugins, task=data, epochs=3,
                                lr=1e-3, betas=(0.9, 0.999), device=torch.device("cpu"),
                                out_dir=str(out), progress=False, checkpoint_every=1,
                                phases=gl_phases(2, 2, plugins), fingerprint="x")
        return generator, plugins, summary

    whole, whole_plugins, summary = run(tmp_path / "whole", task)
    assert summary["steps"] == 6 and "final_G_amex" in summary  # ended in the joint phase
    with pytest.raises(_Interrupt):  # killed before step 4 (the 2nd discriminator-only step)
        run(tmp_path / "killed", _StopAt(task, 1, 1))
    resumed, resumed_plugins, summary = run(tmp_path / "killed", task)
    assert summary["resumes"] == 1 and summary["steps"] == 6
    for a, b in ((whole, resumed), *zip(whole_plugins, resumed_plugins)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name


#---------------------------------------------------------------------------------------------
# A-MEx on natural images: the expansion index, not the batch index


def test_amex_expansions_grow_with_j_and_not_with_the_batch_position():
    masks = expanded_masks([(22, 21, 26, 25), (22, 21, 26, 25)], 4, 4, 4, 46, 48)
    assert torch.equal(masks[:, 0], masks[:, 1])  # same hole, same masks at any batch position
    areas = masks[:, 0].sum(dim=(1, 2, 3)).tolist()
    assert areas == [16.0, 144.0, 400.0, 784.0, 1296.0]  # (4 + 8j)^2


def test_the_gl_amex_row_uses_the_shared_amex_plugin_on_the_rgb_photo():
    params = parse_params(tiny_params())
    _, gl = build_gl("gl", params, 22, 24)
    _, amex = build_gl("gl_amex", params, 22, 24)
    assert [p.name for p in gl] == ["reconstruction", "global_local"]
    assert [p.name for p in amex] == ["reconstruction", "global_local", "amex"]
    plugin = amex[-1]
    assert isinstance(plugin, AMExLoss) and plugin.top_level == 1
    assert plugin.discriminator.blocks[0][0].in_channels == 4 + 3  # (masked photo, mask) + RGB
    ip = params.inpainting
    assert plugin.lambda_mex == pytest.approx(ip.lambda_adv * ip.lambda_amex)


#---------------------------------------------------------------------------------------------
# Metric conventions and floors


def test_ssim_and_l1_on_a_known_pair():
    truth = np.full((20, 30, 3), 100, dtype=np.uint8)
    pred = truth.copy()
    pred[5:15, 10:20] = 110                       # the hole: 10 brighter
    hole = (10, 5, 20, 15)
    assert hole_l1(pred, truth, hole) == 10.0     # 0-255 scale, over the hole
    assert l1(pred, truth) == pytest.approx(10.0 * 100 / 600)  # diluted by the hole's share
    c1 = (0.01 * 255) ** 2                        # flat patches: only SSIM's luminance term
    expected = (2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1)
    assert hole_ssim(pred, truth, hole) == pytest.approx(expected, abs=1e-9)
    assert hole_ssim(truth, truth, hole) == 1.0 and hole_l1(truth, truth, hole) == 0.0
    assert ssim(truth, truth) == 1.0


def test_ssim_shrinks_its_window_for_small_holes_and_refuses_tiny_ones():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    assert -1 <= hole_ssim(a, a[::-1].copy(), (0, 0, 5, 5)) <= 1   # 5x5: window 5
    with pytest.raises(ValueError, match="at least 3x3"):
        hole_ssim(a, a, (0, 0, 2, 8))


def test_mean_fill_floor_paints_only_the_hole():
    photo = np.zeros((6, 8, 3), dtype=np.uint8)
    filled = mean_fill(photo, (1, 2, 4, 5), (10.4, 20.6, 30))
    assert (filled[2:5, 1:4] == [10, 21, 30]).all()
    filled[2:5, 1:4] = 0
    assert not filled.any()


def test_biharmonic_floor_continues_a_smooth_ramp_into_the_hole():
    ramp = np.linspace(0, 240, 24)
    photo = np.repeat(np.repeat(ramp[None, :, None], 20, 0), 3, 2).astype(np.uint8)
    hole = (8, 6, 16, 14)
    filled = biharmonic_fill(photo, hole)
    assert hole_l1(filled, photo, hole) < 2.0
    outside = np.ones(photo.shape[:2], dtype=bool)
    outside[6:14, 8:16] = False
    np.testing.assert_array_equal(filled[outside], photo[outside])
    assert hole_l1(mean_fill(photo, hole, (120, 120, 120)), photo, hole) > 10


#---------------------------------------------------------------------------------------------
# Config errors name the key


@pytest.mark.parametrize("section, value, message", [
    ("inpainting", {"local_fraction": 0.3}, "inpainting.local_fraction"),
    ("inpainting", {"fid_holes": 30}, "inpainting.fid_holes"),
    ("inpainting", {"dilations": [2, 1.5]}, "inpainting.dilations"),
    ("inpainting", {"width": 3}, "inpainting.width"),
    ("inpainting", {"completion_epochs": 2, "discriminator_epochs": 1},
     "inpainting.completion_epochs"),
    ("inpainting", {"reconstruction": "l2"}, "inpainting.reconstruction"),
    ("inpainting_rows", {"gl-facade": {"loss": "amex"}}, "inpainting_rows.gl-facade.loss"),
    ("inpainting_rows", {"mexgan-cityscapes": {"loss": "gl"}}, "row names unique"),
])
def test_bad_inpainting_params_name_the_key(section, value, message):
    raw = tiny_params(**{section: value})
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        parse_params(raw)


def test_facade_under_datasets_is_refused_with_a_pointer_to_inpainting():
    raw = tiny_params()
    raw["datasets"]["facade"] = {"width": 32, "height": 32, "size_threshold": 0.01}
    with pytest.raises(ParamsError, match="datasets.facade.*configure it under `inpainting`"):
        parse_params(raw)


#---------------------------------------------------------------------------------------------
# Tiny end to end: prepare, train both rows, evaluate with the floors


def test_both_rows_train_and_are_scored_on_the_same_holes_as_the_floors(tmp_path):
    raw = tiny_params(seeds=[0])
    params = parse_params(raw)
    ip = params.inpainting
    data = prepare_tiny_facades(ip, str(tmp_path / "data"))
    models = tmp_path / "models"
    for row in params.inpainting_rows:
        summary = train_row(params, row, data, str(models / row / "seed0"),
                            str(tmp_path / "live" / row / "seed0"), progress=False)
        assert summary["steps"] == 6 and [p[0] for p in summary["phases"]] == \
            ["completion", "discriminator", "joint"]
        generator = load_generator(str(models / row / "seed0"), "cpu")
        assert isinstance(generator, CompletionNetwork) and len(generator.fill) == 3
        metrics = tmp_path / "live" / row / "seed0" / "plots" / "metrics"
        assert (metrics / "eval" / "l1.tsv").read_text().startswith("step\tl1\n")
        phases = (metrics / "train" / "phase.tsv").read_text().splitlines()[1:]
        assert [line.split("\t")[-1] for line in phases] == ["0", "0", "1", "1", "2", "2"]
    result = evaluate_table(params, "inpainting", data_root=data, model_root=str(models),
                            samples_dir=str(tmp_path / "eval"), progress=False)
    rows = result["rows"]
    assert set(rows) == {"gl-facade", "gl-amex-facade", "gl-amex-authors-facade",
                         "floor-mean-fill-facade", "floor-biharmonic-facade"}
    for values in rows.values():
        assert 0 <= values["l1"] <= 255 and -1 <= values["ssim"] <= 1
        assert values["test_holes"] == 2 * 3 and values["fid_holes"] == 2 * 2
    holes = {}
    for record in result["scores"]:
        holes.setdefault(record["row"], []).append((record["image"], record["repeat"]))
    assert len({tuple(v) for v in holes.values()}) == 1 and len(holes["gl-facade"]) == 6
    test = InpaintingTestSet(data, ip.width, ip.height, ip.test_holes)
    floor = rows["floor-mean-fill-facade"]["l1"]
    assert floor == pytest.approx(np.mean(test.score(test.floor("mean-fill",
                                                                 result["conditions"]["fill"]))
                                          ["l1"]))
    samples = np.load(tmp_path / "eval" / "gl-amex-facade.npz")
    assert samples["completed"].shape == (2, ip.height, ip.width, 3)
    outside = hole_mask(samples["holes"], ip.height, ip.width) == 0
    np.testing.assert_array_equal(samples["completed"][outside], samples["truth"][outside])
    assert os.path.exists(tmp_path / "eval" / "floor-biharmonic-facade.npz")
