"""End-to-end: the real dvc.yaml and stages on a tiny config in a temporary project."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.tiny_project import tiny_params as base_tiny_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_params() -> dict:
    """tests/tiny_project's sizes, with a q-sweep of two rows so the sensitivity plot has a line."""
    params = base_tiny_params()
    params["q_sweep"] = {"q0": 0, "q1": 1}
    params["mex_rows"] = {name: row for name, row in params["mex_rows"].items()
                          if not row["q_from"].startswith("q_sweep.")
                          or row["q_from"] in ("q_sweep.q0", "q_sweep.q1")}
    return params


def run(cmd, cwd):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture
def project(tmp_path):
    for folder in ("pipeline", "stages"):
        shutil.copytree(os.path.join(REPO, folder), tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "dvc.yaml"), tmp_path / "dvc.yaml")
    with open(tmp_path / "params.yaml", "w") as f:
        yaml.safe_dump(tiny_params(), f, sort_keys=False)
    run(["git", "init", "-q"], tmp_path)
    run(["git", "config", "user.email", "ci@example.com"], tmp_path)
    run(["git", "config", "user.name", "ci"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "tiny"], tmp_path)
    return tmp_path


def test_dvc_repro_runs_every_stage_and_writes_the_reports(project):
    run(["dvc", "repro"], project)
    params = tiny_params()
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(metrics) == set(params["baselines"]) | set(params["mex_rows"])
    for row, values in metrics.items():
        assert 0.0 <= values["tiou"] <= 1.0 and 0.0 <= values["hamm"] <= 1.0, row
        fid_keys = [k for k in values if k.startswith("fid")]
        assert fid_keys in (["fid"], ["fid_standin_random_inception_64d"]), row
    assert metrics["mexgan-nyu"]["q"] == params["q_overrides"]["nyu"]
    assert metrics["pix2pixhd-cityscapes"]["q"] == -1
    for name in ("table1.csv", "table1.md", "table4.csv", "table4.md", "q_sensitivity.csv",
                 "q_sensitivity.png", "figures/grid_cityscapes.png", "figures/grid_nyu.png",
                 "figures/grid_helen.png"):
        assert (project / "reports" / name).stat().st_size > 0, name
    assert "mexgan-helen" in (project / "reports" / "table1.md").read_text()
    shown = run(["dvc", "metrics", "show", "--json"], project)
    assert "amexgan-cityscapes" in shown
    # Nothing changed: a second repro runs no stage but the always-changed manifest.
    again = run(["dvc", "repro"], project)
    assert "Running stage 'train" not in again and "Running stage 'evaluate'" not in again


@pytest.mark.slow
def test_exp_run_q_reruns_only_the_rows_that_read_q(project):
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline"], project)
    out = run(["dvc", "exp", "run", "-S", "q=2"], project)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert {"train_mex@mexgan-cityscapes", "train_mex@mexgan-helen",
            "train_mex@amexgan-cityscapes", "evaluate", "report"} <= ran
    assert not any(name.startswith(("train_baseline", "translator", "prepare")) for name in ran)
    assert "train_mex@mexgan-nyu" not in ran and "train_mex@mexgan-q0-cityscapes" not in ran
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["mexgan-cityscapes"]["q"] == 2
