"""trainer.batches: DataLoader workers build the same batches as the trainer's own process
(every random draw is in the epoch's plan), for every task kind; a resumed epoch skips its first
batches without building them."""
import numpy as np
import pytest
import torch

from pipeline.training import trainer
from pipeline.data.sets import get_spec
from pipeline.models.inpainting import InpaintingTask, mean_colour
from pipeline.data.inputs import EditBox, EditTask, TranslationTask
from pipeline.models.networks import GlobalGenerator
from pipeline.data.preparation import box_rows
from pipeline.data.synthetic import generate_split
from pipeline.models.twosm_views import Observation, TwoStreamTask

CPU = torch.device("cpu")


def _edit_inputs():
    spec = get_spec("cityscapes")
    # 12 tiny street maps: 7 of them hold an eligible box at 0.02 (9 boxes), 4 edit batches of 2
    split = generate_split("cityscapes", "train", 12, 16, 32, seed=2)
    boxes = {}
    for row in box_rows("train", split, spec, 0.02):
        boxes.setdefault(row[1], []).append(EditBox(row[1], row[2], tuple(row[3:7])))
    return split, spec, boxes


def _tasks():
    split, spec, boxes = _edit_inputs()
    photos = generate_split("facade", "train", 5, 16, 16, seed=2).photos
    return {
        "edit": EditTask(split, spec, boxes, batch_size=2, flip=True, seed=3),
        "twosm": TwoStreamTask(split, spec, boxes, Observation("local", 16), batch_size=2,
                               flip=True, seed=3),
        "translation": TranslationTask(split, spec, batch_size=2, flip=True, seed=3),
        "inpainting": InpaintingTask(photos, fill=mean_colour(photos), hole=(0.25, 0.5),
                                     batch_size=2, flip=True, seed=3),
    }


def _same(first, second):
    assert first.boxes == second.boxes
    for name in ("condition", "target", "mask"):
        a, b = getattr(first, name), getattr(second, name)
        assert (a is None and b is None) or torch.equal(a, b), name


@pytest.mark.parametrize("kind", ["edit", "twosm", "translation", "inpainting"])
def test_workers_build_the_same_batches_as_the_trainer_process(kind):
    task = _tasks()[kind]
    for epoch in (0, 1):
        own = list(trainer.batches(task, epoch, CPU, workers=0))
        loaded = list(trainer.batches(task, epoch, CPU, workers=2))
        assert len(own) == len(loaded) == len(task)
        for first, second in zip(own, loaded):
            _same(first, second)
    # and the epochs differ (the plan depends on the epoch)
    first_of = [next(trainer.batches(task, epoch, CPU)) for epoch in (0, 1)]
    assert not torch.equal(first_of[0].target, first_of[1].target) or \
        first_of[0].boxes != first_of[1].boxes


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_epoch_skips_its_first_batches(workers):
    task = _tasks()["edit"]
    full = list(trainer.batches(task, 0, CPU, workers=0))
    resumed = list(trainer.batches(task, 0, CPU, workers=workers, skip=2))
    assert len(resumed) == len(full) >= 3        # batches after the skipped ones to compare
    assert resumed[:2] == [None, None]
    for first, second in zip(full[2:], resumed[2:]):
        _same(first, second)


def test_training_with_workers_is_bit_identical(tmp_path):
    class L1(torch.nn.Module):
        def generator_terms(self, batch, generated, fused):
            return {"G_l1": 0.7 * (fused - batch.target).abs().mean()}

        def discriminator_terms(self, batch, generated, fused):
            return {}

    states = []
    for workers in (0, 2):
        torch.manual_seed(0)
        generator = GlobalGenerator(37, 3, ngf=4, n_downsampling=1, n_blocks=1)
        trainer.train(generator=generator, losses=[L1()], task=_tasks()["edit"], epochs=2,
                      lr=1e-3, betas=(0.5, 0.999), device=CPU,
                      out_dir=str(tmp_path / str(workers)), progress=False,
                      data_workers=workers)
        states.append(generator.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert np.isfinite(sum(v.float().abs().sum().item() for v in states[0].values()))
