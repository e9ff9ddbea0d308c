"""torchrun data parallelism: 2 CPU ranks (gloo) with batch 1 each take the same steps as one
process with batch 2 -- the same samples, boxes and flips, gradients averaged."""
import dataclasses
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pipeline import trainer
from pipeline.config import load_params
from pipeline.datasets import get_spec
from pipeline.distributed import Context, context_from_env
from pipeline.inputs import EditBox, EditTask, condition_channels
from pipeline.networks import VGG19Features
from pipeline.preparation import box_rows
from pipeline.rows import build_generator, build_losses
from pipeline.synthetic import generate_split

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_run(batch_size: int, out_dir: str, ranks=None):
    params = load_params(os.path.join(REPO, "params.yaml"))
    params = dataclasses.replace(params, model=dataclasses.replace(
        params.model, ngf=4, ndf=4, n_downsampling=2, n_blocks=1, n_layers_d=2))
    spec = get_spec("cityscapes")
    split = generate_split("cityscapes", "train", 4, 16, 32, seed=3)
    boxes = {}
    for row in box_rows("train", split, spec, 0.02):
        boxes.setdefault(row[1], []).append(EditBox(row[1], row[2], tuple(row[3:7])))
    torch.manual_seed(0)
    channels = condition_channels(spec)
    generator = build_generator(channels, params)
    losses = build_losses("mex", channels, params, 1, VGG19Features())
    task = EditTask(split, spec, boxes, batch_size=batch_size, flip=True, seed=0)
    trainer.train(generator=generator, losses=losses, task=task, epochs=2, lr=2e-4,
                  betas=(0.5, 0.999), device=torch.device("cpu"), out_dir=out_dir,
                  progress=False, ranks=ranks)
    return generator.state_dict()


def _rank(rank, port, out_dir):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    ranks = context_from_env("cpu")
    tiny_run(1, out_dir, ranks)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_context_splits_batches_evenly():
    ranks = [Context(rank=r, world_size=3) for r in range(3)]
    owned = [[i for i in range(8) if c.owns(i, 8)] for c in ranks]
    assert owned == [[0, 3], [1, 4], [2, 5]]  # 8 // 3 = 2 steps each; batches 6, 7 dropped
    assert Context().owns(7, 8) and Context().steps_per_epoch(8) == 8


@pytest.mark.slow
def test_two_ranks_match_one_process_with_twice_the_batch(tmp_path):
    single = tiny_run(2, str(tmp_path / "single"))
    mp.spawn(_rank, args=(free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    # Rank 0 alone writes checkpoints; its last one holds the final weights.
    distributed = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)["generator"]
    # Compare what the generators compute: a conv bias right before an instance norm has a
    # gradient of ~0 (pure rounding noise, which Adam rescales to full steps), but no effect.
    spec = get_spec("cityscapes")
    params = load_params(os.path.join(REPO, "params.yaml"))
    params = dataclasses.replace(params, model=dataclasses.replace(
        params.model, ngf=4, ndf=4, n_downsampling=2, n_blocks=1, n_layers_d=2))
    outputs = []
    for state in (single, distributed):
        generator = build_generator(condition_channels(spec), params)
        generator.load_state_dict(state)
        torch.manual_seed(5)
        condition = torch.rand(2, condition_channels(spec), 16, 32)
        outputs.append(generator(condition))
    torch.manual_seed(0)  # the initialisation both runs started from
    untrained = build_generator(condition_channels(spec), params)(condition)
    assert torch.allclose(outputs[0], outputs[1], atol=1e-4)
    assert (outputs[0] - untrained).abs().max() > 100 * (outputs[0] - outputs[1]).abs().max()


@pytest.mark.slow
def test_train_processes_param_relaunches_the_stage_under_torchrun(tmp_path):
    """`train.processes: 2` alone turns `python -m stages.train ROW` into a 2-rank run."""
    import shutil
    import subprocess
    import sys

    from tests.tiny_project import tiny_params, write_params
    for folder in ("pipeline", "stages"):
        shutil.copytree(os.path.join(REPO, folder), tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    write_params(tmp_path / "params.yaml", tiny_params(train={"processes": 2}))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    env.pop("WORLD_SIZE", None)
    for cmd in (["prepare", "cityscapes", "--out", "artifacts/data/cityscapes"],
                ["train", "mexgan-cityscapes"]):
        result = subprocess.run([sys.executable, "-m", f"stages.{cmd[0]}", *cmd[1:]],
                                cwd=tmp_path, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    summary = (tmp_path / "artifacts/models/mexgan-cityscapes/seed0/train_summary.json").read_text()
    assert '"world_size": 2' in summary
