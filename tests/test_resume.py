"""Resumable, bit-exact training: the real `python -m stages.train` is SIGKILLed after it has
written k checkpoints, restarted, and must end with exactly (torch.equal) the weights, Adam
states and dvclive history of an uninterrupted run. Also: a damaged newest checkpoint falls back
to the previous one, a checkpoint of other params is not used, and a non-finite loss stops the
run naming the step, the term and the last good checkpoint."""
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from pipeline.training import checkpoints, trainer
from pipeline.config.validation import parse_params
from pipeline.models.losses import GanBatch
from pipeline.models.networks import GlobalGenerator
from pipeline.data.preparation import prepare_dataset
from pipeline.models.model_files import GENERATOR_FILE, SUMMARY_FILE
from pipeline.kinds import train_row
from pipeline.data.synthetic import generate_split
from tiny_project import REPO, tiny_params, write_params

ROW = "mexgan-cityscapes"
EPOCHS = 2            # the lr decays in the second epoch: the schedule is part of the resume
STEPS = 12            # 6 training images x 2 epochs, batch 1


def project_params(vgg_path):
    # the tight box rule: every one of the 6 synthetic training images has a box (STEPS)
    return tiny_params(train={"epochs": EPOCHS, "checkpoint_every": 1, "eval_every": 5,
                              "eval_boxes": 3}, data={"box_rule": "tight"},
                       loss={"vgg_weights_path": vgg_path},
                       baselines={}, mex_rows={ROW: {"dataset": "cityscapes", "loss": "mex",
                                                     "q_from": "q"}},
                       q_sweep={})


def prepare(project, params):
    settings = params["datasets"]["cityscapes"]
    splits = {split: generate_split("cityscapes", split, settings[f"synthetic_{split}"],
                                    settings["height"], settings["width"], params["data"]["seed"])
              for split in ("train", "test")}
    prepare_dataset("cityscapes", splits, str(project / "artifacts" / "data" / "cityscapes"),
                    width=settings["width"], height=settings["height"],
                    threshold=settings["size_threshold"],
                    box_rule=params["data"]["box_rule"], source="synthetic")


def dirs(root):
    """Data, model and dvclive folders of the row's first seed, where `stages.train ROW` writes."""
    return (str(root / "artifacts" / "data" / "cityscapes"),
            str(root / "artifacts" / "models" / ROW / "seed0"),
            str(root / "reports" / "train" / ROW / "seed0"))


def train_in_process(root, params):
    data_dir, model_dir, live_dir = dirs(root)
    return train_row(parse_params(params), ROW, data_dir, model_dir, live_dir, progress=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, vgg_weights):
    """A prepared tiny project and the uninterrupted reference run (in this process)."""
    root = tmp_path_factory.mktemp("resume")
    params = project_params(vgg_weights)
    template = root / "template"
    prepare(template, params)
    write_params(template / "params.yaml", params)
    reference = root / "reference"
    shutil.copytree(template, reference)
    summary = train_in_process(reference, params)
    assert summary["steps"] == STEPS and summary["resumes"] == 0
    return {"root": root, "params": params, "template": template, "reference": reference}


def new_project(setup, name):
    project = setup["root"] / name
    shutil.copytree(setup["template"], project)
    return project


def tensors_equal(a, b, where=""):
    """Nested state dicts / lists equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            tensors_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            tensors_equal(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def assert_same_as_reference(setup, project):
    _, model_dir, live_dir = dirs(project)
    _, ref_model, ref_live = dirs(setup["reference"])
    final = torch.load(os.path.join(model_dir, GENERATOR_FILE), weights_only=False)
    expected = torch.load(os.path.join(ref_model, GENERATOR_FILE), weights_only=False)
    for key, value in expected["generator"].items():
        assert torch.equal(final["generator"][key], value), key
    # The whole last checkpoint: discriminators, both Adam states, position.
    state = torch.load(os.path.join(model_dir, checkpoints.CHECKPOINT), weights_only=False)
    ref_state = torch.load(os.path.join(ref_model, checkpoints.CHECKPOINT), weights_only=False)
    for key in ("generator", "losses", "opt_g", "opt_d", "epoch", "batch", "step"):
        tensors_equal(state[key], ref_state[key], key)
    # The dvclive history: same points, same values, no duplicated or lost step.
    ref_metrics = os.path.join(ref_live, "plots", "metrics")
    for root, _dirs, files in os.walk(ref_metrics):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), ref_metrics)
            with open(os.path.join(live_dir, "plots", "metrics", relative)) as f:
                got = f.read()
            with open(os.path.join(ref_metrics, relative)) as f:
                assert got == f.read(), relative
    with open(os.path.join(live_dir, "metrics.json")) as f:
        assert json.load(f)["step"] == STEPS
    with open(os.path.join(model_dir, SUMMARY_FILE)) as f:
        summary = json.load(f)
    assert summary["steps"] == STEPS and "resumes" not in summary  # run history: resources
    with open(os.path.join(live_dir, "resources.json")) as f:
        summary.update(json.load(f))
    return summary


def checkpoint_step(model_dir):
    """The step of the newest complete checkpoint (-1 while there is none)."""
    path = os.path.join(model_dir, checkpoints.CHECKPOINT)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)["step"]
    except Exception:  # absent, or replaced while we read it
        return -1


def start_stage(project):
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "stages.train", ROW], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after(project, min_step, delay, timeout=240):
    """Run the stage and SIGKILL it `delay` s after it has written the checkpoint of step
    >= min_step. Returns the stage's stderr (None if it finished first)."""
    _, model_dir, _ = dirs(project)
    proc = start_stage(project)
    deadline = time.time() + timeout
    try:
        while proc.poll() is None:
            assert time.time() < deadline, "training did not reach the kill point"
            if checkpoint_step(model_dir) >= min_step:
                time.sleep(delay)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return proc.stderr.read()
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    return None


def test_sigkilled_stage_resumes_bit_exact(setup, caplog):
    """One SIGKILL of the real stage at a random point -- a random step, right after its
    checkpoint or a random delay later (during the next step or checkpoint write) -- then the
    resume (here in-process). The point is drawn afresh on every run and named in any failure;
    MEXGAN_KILL_SEED=N repeats one. The slow suite kills the same run several times."""
    seed = int(os.environ.get("MEXGAN_KILL_SEED", random.SystemRandom().randrange(2 ** 31)))
    rng = random.Random(seed)
    point, delay = rng.randrange(1, STEPS - 2), rng.choice([0.0, 0.0, 0.01, 0.03])
    where = f"MEXGAN_KILL_SEED={seed}: SIGKILL {delay} s after the checkpoint of step {point}"
    project = new_project(setup, "killed_once")
    stderr = kill_after(project, min_step=point, delay=delay)
    assert stderr is not None, f"{where}: the stage finished before the kill"
    _, model_dir, _ = dirs(project)
    killed_at = checkpoint_step(model_dir)
    assert point <= killed_at < STEPS, where
    assert not os.path.exists(os.path.join(model_dir, GENERATOR_FILE)), where
    with caplog.at_level(logging.INFO, logger="pipeline.training.checkpoints"):
        summary = train_in_process(project, setup["params"])
    assert f"resuming from {os.path.join(model_dir, 'checkpoint')}" in caplog.text, where
    assert summary["resumes"] == 1, where
    try:
        assert_same_as_reference(setup, project)
    except AssertionError as err:
        raise AssertionError(f"{where}: {err}") from err


@pytest.mark.slow
def test_repeated_sigkills_at_random_points_resume_bit_exact(setup):
    """Several SIGKILLs at seeded random points (some right after a checkpoint, some a random
    delay later, i.e. during the next step or write), each resumed by the real stage; before one
    resume the newest checkpoint is truncated and dvclive's metrics.json damaged."""
    project = new_project(setup, "killed_often")
    _, model_dir, live_dir = dirs(project)
    rng = random.Random(2024)
    points = sorted(rng.sample(range(1, STEPS - 1), 4))
    kills = 0
    for i, point in enumerate(points):
        stderr = kill_after(project, min_step=point, delay=rng.choice([0.0, 0.0, 0.05, 0.2]))
        if stderr is None:
            break
        kills += 1
        if i == 1:
            path = os.path.join(model_dir, checkpoints.CHECKPOINT)
            data = open(path, "rb").read()
            open(path, "wb").write(data[:len(data) // 2])
            open(os.path.join(live_dir, "metrics.json"), "w").write('{"train": {"G_a')
    proc = start_stage(project)
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr
    assert kills >= 2
    summary = assert_same_as_reference(setup, project)
    # Resumes of the checkpoint's lineage: the truncated newest one may have held one more.
    assert kills - 1 <= summary["resumes"] <= kills


def test_truncated_newest_checkpoint_falls_back_to_previous(setup, caplog):
    project = new_project(setup, "truncated")
    _, model_dir, _ = dirs(project)
    _, ref_model, _ = dirs(setup["reference"])
    shutil.copytree(ref_model, model_dir)
    os.remove(os.path.join(model_dir, GENERATOR_FILE))
    previous = torch.load(os.path.join(model_dir, checkpoints.PREVIOUS_CHECKPOINT),
                          weights_only=False)
    assert previous["step"] == STEPS - 1       # the previous checkpoint: one step earlier
    newest = os.path.join(model_dir, checkpoints.CHECKPOINT)
    data = open(newest, "rb").read()
    open(newest, "wb").write(data[:len(data) // 3])
    with caplog.at_level(logging.INFO):
        summary = train_in_process(project, setup["params"])
    assert f"skipping unreadable checkpoint {newest}" in caplog.text
    previous_path = os.path.join(model_dir, checkpoints.PREVIOUS_CHECKPOINT)
    assert f"resuming from {previous_path}" in caplog.text
    assert "(step 11)" in caplog.text and summary["resumes"] == 1
    # The live history of the reference was not copied: compare the weights only.
    final = torch.load(os.path.join(model_dir, GENERATOR_FILE), weights_only=False)
    expected = torch.load(os.path.join(ref_model, GENERATOR_FILE), weights_only=False)
    tensors_equal(final["generator"], expected["generator"], "generator")


def test_checkpoint_of_other_params_is_not_resumed(setup, caplog):
    project = new_project(setup, "other_params")
    _, model_dir, _ = dirs(project)
    _, ref_model, _ = dirs(setup["reference"])
    shutil.copytree(ref_model, model_dir)
    params = tiny_params(**{**setup["params"], "train": {**setup["params"]["train"],
                                                         "lr": 0.0001}})
    with caplog.at_level(logging.INFO, logger="pipeline.training.checkpoints"):
        summary = train_in_process(project, params)
    assert "written for other params" in caplog.text
    assert "training from scratch" in caplog.text
    assert summary["resumes"] == 0 and summary["steps"] == STEPS
    # Its first checkpoint replaced the foreign one instead of rotating it to .prev.
    previous = torch.load(os.path.join(model_dir, checkpoints.PREVIOUS_CHECKPOINT),
                          weights_only=False)
    assert json.loads(previous["fingerprint"])["train"]["lr"] == 0.0001


def test_checkpoint_of_other_code_is_not_resumed(setup, caplog, monkeypatch):
    """A code change reruns the DVC stage; it must retrain, not reuse the old code's model."""
    import pipeline.training.runs as runs
    project = new_project(setup, "other_code")
    _, model_dir, _ = dirs(project)
    _, ref_model, _ = dirs(setup["reference"])
    shutil.copytree(ref_model, model_dir)
    monkeypatch.setattr(runs, "code_digest", lambda: "changed")
    with caplog.at_level(logging.INFO, logger="pipeline.training.checkpoints"):
        summary = train_in_process(project, setup["params"])
    assert "written for other params or code" in caplog.text
    assert summary["resumes"] == 0 and summary["steps"] == STEPS


def test_checkpoint_every_and_data_workers_do_not_stop_a_resume(setup):
    """Settings that never change the result (where checkpoints go, who builds the batches)
    keep a finished run's checkpoint usable: the rerun resumes, trains nothing, same model."""
    project = new_project(setup, "same_result_settings")
    _, model_dir, _ = dirs(project)
    _, ref_model, _ = dirs(setup["reference"])
    shutil.copytree(ref_model, model_dir)
    params = tiny_params(**{**setup["params"], "train": {**setup["params"]["train"],
                                                         "checkpoint_every": 3,
                                                         "data_workers": 2}})
    summary = train_in_process(project, params)
    assert summary["resumes"] == 1 and summary["steps"] == STEPS
    ours = torch.load(os.path.join(model_dir, "generator.pt"), weights_only=False)["generator"]
    reference = torch.load(os.path.join(ref_model, "generator.pt"),
                           weights_only=False)["generator"]
    assert all(torch.equal(ours[k], reference[k]) for k in reference)


def test_checkpoints_leave_out_the_frozen_vgg(setup):
    _, ref_model, _ = dirs(setup["reference"])
    state = torch.load(os.path.join(ref_model, checkpoints.CHECKPOINT), weights_only=False)
    assert not any(key.startswith("vgg.") for key in state["losses"][0])
    assert os.path.getsize(os.path.join(ref_model, checkpoints.CHECKPOINT)) < 5_000_000
    assert not [n for n in os.listdir(ref_model) if ".tmp." in n]


#---------------------------------------------------------------------------------------------
# The non-finite loss guard


class ConstantTask:
    """Four fixed batches per epoch."""

    def __len__(self):
        return 4

    def epoch(self, epoch, device):
        g = torch.Generator().manual_seed(epoch)
        for _ in range(4):
            yield GanBatch(condition=torch.rand(1, 3, 8, 8, generator=g),
                           target=torch.rand(1, 3, 8, 8, generator=g) * 2 - 1)


class L1ThenNaN(nn.Module):
    """A loss plug-in whose term turns NaN at step `bad_step` (1-based)."""

    def __init__(self, bad_step):
        super().__init__()
        self.bad_step, self.calls = bad_step, 0

    def generator_terms(self, batch, generated, fused):
        self.calls += 1
        value = (generated - batch.target).abs().mean()
        return {"G_l1": value * float("nan") if self.calls == self.bad_step else value}

    def discriminator_terms(self, batch, generated, fused):
        return {}


def test_non_finite_loss_names_step_term_and_last_checkpoint(tmp_path):
    torch.manual_seed(0)
    generator = GlobalGenerator(3, 3, ngf=4, n_downsampling=1, n_blocks=1)
    with pytest.raises(trainer.NonFiniteLoss) as err:
        trainer.train(generator=generator, losses=[L1ThenNaN(3)], task=ConstantTask(),
                      epochs=1, lr=1e-3, betas=(0.5, 0.999), device=torch.device("cpu"),
                      out_dir=str(tmp_path), checkpoint_every=1, progress=False)
    message = str(err.value)
    assert "G_l1=nan" in message and "at step 3" in message
    assert f"last good checkpoint: {tmp_path / checkpoints.CHECKPOINT}" in message
    state = torch.load(tmp_path / checkpoints.CHECKPOINT, weights_only=False)
    assert state["step"] == 2           # the checkpoint before the bad step is intact
    assert np.isfinite([v.abs().sum().item() for v in state["generator"].values()]).all()


def test_learning_curves_score_the_held_back_boxes_at_eval_every_and_at_the_end(setup):
    from pipeline.evaluation.evaluation import HeldBackBoxes, edited_maps
    from pipeline.kinds import load_generator
    data_dir, model_dir, live_dir = dirs(setup["reference"])
    eval_dir = os.path.join(live_dir, "plots", "metrics", "eval")
    with open(os.path.join(eval_dir, "tiou.tsv")) as f:
        lines = f.read().splitlines()
    assert lines[0] == "step\ttiou"
    assert [int(line.split("\t")[0]) for line in lines[1:]] == [5, 10, STEPS]
    # the last point is the final generator scored on the first eval_boxes test boxes
    final = HeldBackBoxes("cityscapes", data_dir, 3, edited_maps).scores(
        load_generator(model_dir, "cpu"))
    assert float(lines[-1].split("\t")[1]) == final["tiou"]
    with open(os.path.join(eval_dir, "hamm.tsv")) as f:
        assert float(f.read().splitlines()[-1].split("\t")[1]) == final["hamm"]
    # time and memory are kept apart, in the .dvcignored resources.json
    with open(os.path.join(live_dir, "resources.json")) as f:
        assert "train_seconds" in json.load(f)
    with open(os.path.join(model_dir, SUMMARY_FILE)) as f:
        assert "train_seconds" not in json.load(f)
