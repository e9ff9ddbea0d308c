"""Data parallelism through the public stage API: `train.processes: 2` alone turns
`python -m stages.train ROW` into a 2-rank torchrun run (gloo on CPU), and 2 ranks with batch 1
each train the same generator as 1 process with batch 2 -- the same samples, boxes and flips,
gradients averaged. Tiny on purpose (6 images, 1 epoch = 3 steps, 32x16): it runs in the fast
suite."""
import os
import subprocess
import sys

import torch

from pipeline.data.sets import get_spec
from pipeline.training.distributed import Context
from pipeline.data.inputs import condition_channels
from pipeline.data.preparation import prepare_dataset
from pipeline.config.loading import load_params
from pipeline.kinds import load_generator
from pipeline.kinds import train_row
from pipeline.data.synthetic import generate_split
from tiny_project import REPO, tiny_params, write_params

ROW = "mexgan-cityscapes"


def test_context_splits_batches_evenly():
    ranks = [Context(rank=r, world_size=3) for r in range(3)]
    owned = [[i for i in range(8) if c.owns(i, 8)] for c in ranks]
    assert owned == [[0, 3], [1, 4], [2, 5]]  # 8 // 3 = 2 steps each; batches 6, 7 dropped
    assert Context().owns(7, 8) and Context().steps_per_epoch(8) == 8


def _project(root, name, vgg, **train):
    """A tiny project with prepared data (tight box rule: all 6 training images have a box)."""
    project = root / name
    params = tiny_params(train={"epochs": 1, "checkpoint_every": 1, "eval_every": 0,
                                "eval_boxes": 2, **train},
                         data={"box_rule": "tight"}, loss={"vgg_weights_path": vgg},
                         baselines={}, twosm_rows={}, q_sweep={},
                         mex_rows={ROW: {"dataset": "cityscapes", "loss": "mex", "q_from": "q"}})
    settings = params["datasets"]["cityscapes"]
    splits = {split: generate_split("cityscapes", split, settings[f"synthetic_{split}"],
                                    settings["height"], settings["width"],
                                    params["data"]["seed"])
              for split in ("train", "test")}
    prepare_dataset("cityscapes", splits, str(project / "artifacts" / "data" / "cityscapes"),
                    width=settings["width"], height=settings["height"],
                    threshold=settings["size_threshold"], box_rule="tight", source="synthetic")
    write_params(project / "params.yaml", params)
    return project


def _start(project):
    env = dict(os.environ, PYTHONPATH=REPO,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env.pop("WORLD_SIZE", None)
    return subprocess.Popen([sys.executable, "-m", "stages.train", ROW], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_ranks_match_one_process_with_twice_the_batch(tmp_path, vgg_weights):
    vgg = vgg_weights
    single = _project(tmp_path, "single", vgg, batch_size=2, processes=1)
    ranks = _project(tmp_path, "ranks", vgg, batch_size=1, processes=2)
    proc = _start(ranks)                       # the real stage, relaunched under torchrun
    model = os.path.join("artifacts", "models", ROW, "seed0")
    # meanwhile the reference, one process with batch 2, in this process (the rows API)
    train_row(load_params(str(single / "params.yaml")), ROW,
              str(single / "artifacts" / "data" / "cityscapes"), str(single / model),
              str(single / "reports" / "train" / ROW / "seed0"), progress=False)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    summary = (ranks / model / "train_summary.json").read_text()
    assert '"world_size": 2' in summary and '"steps": 3' in summary   # 6 images / 2 per step
    assert '"steps": 3' in (single / model / "train_summary.json").read_text()
    # Compare what the generators compute: a conv bias right before an instance norm has a
    # gradient of ~0 (rounding noise that Adam rescales to full steps) but no effect.
    torch.manual_seed(5)
    generators = [load_generator(str(p / model), "cpu") for p in (single, ranks)]
    condition = torch.rand(2, condition_channels(get_spec("cityscapes")), 16, 32)
    with torch.no_grad():
        outputs = [g(condition) for g in generators]
        # the single run's weights one step before the end (checkpoint.prev.pt, the checkpoint
        # before the last): how far one step moves the output
        previous = load_generator(str(single / model), "cpu")
        state = torch.load(single / model / "checkpoint.prev.pt", weights_only=False)
        previous.load_state_dict(state["generator"])
        one_step = (outputs[0] - previous(condition)).abs().max()
    difference = (outputs[0] - outputs[1]).abs().max()
    assert difference < 1e-4 and difference < 0.01 * one_step, (difference, one_step)
