"""End-to-end: the real dvc.yaml and stages on a tiny config in a temporary project."""
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
import yaml

from tests.tiny_project import tiny_params as base_tiny_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_params(datasets=None, sweep=("q0", "q1")) -> dict:
    """tests/tiny_project's sizes, with a q-sweep of two rows so the sensitivity plot has a line.
    `datasets`: keep only these datasets and their rows (default: all three). `sweep`: the
    q-sweep rows kept (q0: q = 0, q1: q = 1, the main row's q); with q0 alone the plot's line
    is q0 and the main row (the sweep need not train a second model of the main row's q)."""
    params = base_tiny_params()
    params["q_sweep"] = {name: q for name, q in (("q0", 0), ("q1", 1)) if name in sweep}
    params["mex_rows"] = {name: row for name, row in params["mex_rows"].items()
                          if not row["q_from"].startswith("q_sweep.")
                          or row["q_from"] in {f"q_sweep.{name}" for name in sweep}}
    # TwoSM: the local observation and the full one with MEx on the context stream
    params["twosm_rows"] = {name: row for name, row in params["twosm_rows"].items()
                            if name in ("twosm-cityscapes", "twosm-full-mex-cityscapes")}
    params["twosm"]["crop_size"] = 16
    if datasets is not None:
        params["datasets"] = {name: params["datasets"][name] for name in datasets}
        for section in ("baselines", "mex_rows", "twosm_rows"):
            params[section] = {name: row for name, row in params[section].items()
                               if row["dataset"] in datasets}
        params["q_overrides"] = {name: q for name, q in params["q_overrides"].items()
                                 if name in datasets}
    return params


# The fast suite's full-pipeline smoke test runs Cityscapes (every row kind, one q-sweep row) and
# Table 3; the slow suite runs all three datasets (CI's `dvc repro --force` on the demo profile
# runs them too).
FAST_DATASETS = ("cityscapes",)
FAST_SWEEP = ("q0",)
FAST_TEST = "test_dvc_repro_runs_every_stage_and_writes_the_reports"


def run(cmd, cwd):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def _project(tmp_path, params, vgg_weights):
    for folder in ("pipeline", "stages"):
        shutil.copytree(os.path.join(REPO, folder), tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "tools").mkdir()   # stage code_hashes reads the imports with it
    shutil.copy(os.path.join(REPO, "tools", "stage_deps.py"), tmp_path / "tools")
    shutil.copy(os.path.join(REPO, "dvc.yaml"), tmp_path / "dvc.yaml")
    shutil.copy(os.path.join(REPO, ".dvcignore"), tmp_path / ".dvcignore")
    (tmp_path / "huev").mkdir()
    shutil.copy(os.path.join(REPO, "huev", "votes.csv"), tmp_path / "huev" / "votes.csv")
    (tmp_path / "reports" / "study").mkdir(parents=True)
    # dataset_report's inputs and the committed real-map scores (stages.real_maps) report reads
    for name in ("real_eligible_boxes.json", "world_statistics.json", "real_maps.md"):
        shutil.copy(os.path.join(REPO, "reports", name), tmp_path / "reports" / name)
    for study in ("study", "study_authors", "study_twosm", "study_gl", "study_real"):
        (tmp_path / "reports" / study).mkdir(parents=True, exist_ok=True)
        (tmp_path / "reports" / study / "summary.md").write_text("## CPU study\n\nnot run\n")
    # a VGG19 weights file: each training stage loads it in 0.2 s instead of building the
    # random-init stand-in in 1.5 s (and the real loading path runs); the session's one file,
    # outside the project (git would otherwise add and compress its 80 MB)
    params["loss"]["vgg_weights_path"] = vgg_weights
    with open(tmp_path / "params.yaml", "w") as f:
        yaml.safe_dump(params, f, sort_keys=False)
    run(["git", "init", "-q"], tmp_path)
    run(["git", "config", "user.email", "ci@example.com"], tmp_path)
    run(["git", "config", "user.name", "ci"], tmp_path)
    run(["dvc", "init", "-q"], tmp_path)
    run(["git", "add", "-A"], tmp_path)
    run(["git", "commit", "-qm", "tiny"], tmp_path)
    return tmp_path


@pytest.fixture
def project(tmp_path, vgg_weights):
    """A project with every dataset."""
    return _project(tmp_path, tiny_params(), vgg_weights)


class BackgroundRepro:
    """The fast end-to-end project (Cityscapes, FAST_SWEEP, Table 3) and its first `dvc repro`,
    started without waiting. conftest.py starts it with the session when FAST_TEST is selected
    and runs that test last: the stage processes (minutes, one at a time, one thread each) run
    on the second core beside the other tests (one thread each); FAST_TEST `wait`s for it."""

    def __init__(self, root, vgg_weights):
        self.params = tiny_params(FAST_DATASETS, FAST_SWEEP)
        self.project = _project(root / "project", self.params, vgg_weights)
        self.log = open(root / "repro.log", "w+")
        env = dict(os.environ,
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        self.process = subprocess.Popen(["dvc", "repro"], cwd=self.project, env=env,
                                        stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)

    def wait(self):
        """The repro's exit; fails like `run` when it failed."""
        code = self.process.wait()
        self.log.seek(0)
        output = self.log.read()
        assert code == 0, f"['dvc', 'repro'] failed:\n{output[-6000:]}"
        return output

    def stop(self):
        """Ends the repro and its stage process if they still run (a session cut short)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def test_dvc_repro_runs_every_stage_and_writes_the_reports(e2e_repro, tmp_path, vgg_weights):
    """check_repro on the repro started with the session (conftest.py: e2e_repro; here when
    this test runs without that fixture's start); check_table3_without_rows in a copy of the
    project as it stands after that repro (one repro for both), on the second core while
    check_repro's own reruns use the first: the rest of the suite has ended by then."""
    repro = e2e_repro
    if repro is None:
        repro = BackgroundRepro(tmp_path, vgg_weights)
    project, params = repro.project, repro.params
    table3 = {}

    def wait_then_check_table3_in_a_copy():
        output = repro.wait()
        copy = tmp_path / "table3_project"
        shutil.copytree(project, copy, symlinks=True)

        def check():
            try:
                check_table3_without_rows(copy, params)
            except BaseException as err:  # noqa: BLE001 - re-raised in the test's thread
                table3["error"] = err
        table3["thread"] = threading.Thread(target=check)
        table3["thread"].start()
        return output

    try:
        check_repro(project, params, wait_then_check_table3_in_a_copy)
    finally:
        if "thread" in table3:
            table3["thread"].join()
        if repro is not e2e_repro:
            repro.stop()
    sweep = (project / "reports" / "q_sensitivity.csv").read_text()
    assert sweep.startswith("row,q,") and ("\nmexgan-q0-cityscapes,0," in sweep
                                          and "\nmexgan-cityscapes,1," in sweep), sweep
    if "error" in table3:
        raise table3["error"]


@pytest.mark.slow
def test_dvc_repro_with_every_dataset(project):
    check_repro(project, tiny_params())


def check_repro(project, params, repro=None):
    """dvc repro (`repro`: waits for one already started instead): every stage runs and writes
    its reports; a second repro runs nothing; a row retrained from scratch, or forced, gives
    the same dvc.lock."""
    if repro is None:
        run(["dvc", "repro"], project)
    else:
        repro()
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    floors = {f"floor-{f}-{d}" for f in ("fill-box", "mean-mask") for d in params["datasets"]}
    assert set(metrics) == (set(params["baselines"]) | set(params["mex_rows"])
                            | set(params["twosm_rows"]) | floors)
    for row, values in metrics.items():
        assert 0.0 <= values["tiou"] <= 1.0 and 0.0 <= values["hamm"] <= 1.0, row
        if row in floors:
            continue
        fid_keys = [k for k in values if k.startswith("fid")]
        assert fid_keys in (["fid"], ["fid_standin_random_inception_64d"]), row
    # the fill-box floor is the share of each test box the object covers: above 0.5 here
    assert metrics["floor-fill-box-cityscapes"]["tiou"] > 0.5
    eval_curve = project / "reports/train/mexgan-cityscapes/seed0/plots/metrics/eval/tiou.tsv"
    assert eval_curve.read_text().startswith("step\ttiou\n")
    assert metrics["pix2pixhd-cityscapes"]["q"] == -1
    for name in ("table1.csv", "table1.md", "table4.csv", "table4.md", "q_sensitivity.csv",
                 "q_sensitivity.png", "differences.md", "scores.csv",
                 "figures/metric_curves_cityscapes.png",
                 *(f"figures/grid_{dataset}.png" for dataset in params["datasets"])):
        assert (project / "reports" / name).stat().st_size > 0, name
    if "nyu" in params["datasets"]:
        assert metrics["mexgan-nyu"]["q"] == params["q_overrides"]["nyu"]
    if "helen" in params["datasets"]:
        assert "mexgan-helen" in (project / "reports" / "table1.md").read_text()
    # HuEv: the study items (every test box's result of both rows) and, with no votes, a Table 1
    # HuEv line that says so
    from pipeline.data.sets import get_spec
    from pipeline.apps.huev import load_items
    items = load_items(str(project / "artifacts/eval/results"), params["huev"]["rows"],
                       get_spec("cityscapes").palette)
    assert len(items) == metrics["mexgan-cityscapes"]["test_boxes"]
    table1 = (project / "reports" / "table1.md").read_text()
    # the paper's layout (issue 34): a line per row, ours [interval] · verdict, paper beside
    mexgan = next(l for l in table1.splitlines() if l.startswith("| cityscapes | mexgan-city"))
    assert mexgan.endswith("| no votes yet | 0.5296 |")
    table2 = (project / "reports" / "table2.md").read_text()
    full_mex = next(l for l in table2.splitlines() if "| twosm-full-mex-cityscapes |" in l)
    assert full_mex.split(" | ")[3].startswith("0.")   # measured, not missing
    assert "| 0.8242 |" in full_mex
    # Table 3: both GL rows and the two inpainting floors, scored on the same seed-679 holes
    inpainting = json.loads((project / "reports" / "inpainting_metrics.json").read_text())
    assert set(inpainting) == set(params["inpainting_rows"]) | {
        "floor-mean-fill-facade", "floor-biharmonic-facade"}
    for row, values in inpainting.items():
        assert 0.0 <= values["l1"] <= 255.0 and -1.0 <= values["ssim"] <= 1.0, row
        assert values["test_holes"] == 2 * params["inpainting"]["test_holes"], row
    table3 = (project / "reports" / "table3.md").read_text()
    gl_amex = next(l for l in table3.splitlines() if "| gl-amex-facade |" in l)
    assert "| 20.22 |" in gl_amex and "not reproduced" not in table3
    for name in ("figures/grid_facade.png", "figures/metric_curves_facade.png",
                 "inpainting_scores.csv", "train/gl-facade/seed0/plots/metrics/train/phase.tsv"):
        assert (project / "reports" / name).stat().st_size > 0, name
    shown = run(["dvc", "metrics", "show", "--json"], project)
    assert "amexgan-cityscapes" in shown and "floor-biharmonic-facade" in shown
    # Nothing changed: a second repro runs no stage but the always-changed manifest.
    again = run(["dvc", "repro"], project)
    assert "Running stage 'train" not in again and "Running stage 'evaluate'" not in again
    # Retraining a row from scratch gives the same model: dvc.lock does not change (time and
    # memory live in .dvcignored files), and nothing downstream reruns.
    lock = (project / "dvc.lock").read_text()
    shutil.rmtree(project / "artifacts/models/pix2pixhd-cityscapes/seed0")
    again = run(["dvc", "repro", "train_baseline@pix2pixhd-cityscapes-0", "report"], project)
    assert "Running stage 'train_baseline@pix2pixhd-cityscapes-0'" in again
    assert "Running stage 'evaluate'" not in again
    assert (project / "dvc.lock").read_text() == lock
    # ... and so does a forced rerun, which resumes from the final checkpoint (the resume count
    # is run history, kept in resources.json with the time).
    again = run(["dvc", "repro", "--force", "--single-item",
                 "train_baseline@pix2pixhd-cityscapes-0"], project)
    assert "Running stage 'train_baseline@pix2pixhd-cityscapes-0'" in again
    assert (project / "dvc.lock").read_text() == lock


@pytest.mark.slow
def test_exp_run_q_reruns_only_the_rows_that_read_q(project):
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline"], project)
    sweep_model = project / "artifacts/models/mexgan-q0-cityscapes/seed0/generator.pt"
    before = sweep_model.read_bytes()
    out = run(["dvc", "exp", "run", "-S", "q=2"], project)
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    # Each row's stage depends on its own q (artifacts/row_expansion/<row>.json), so exactly
    # the rows whose q_from is q retrain: not the q-sweep rows, mexgan-nyu or the rows without MEx.
    params = yaml.safe_load((project / "params.yaml").read_text())
    following = {f"{group}@{row}-0" for group, rows in (("train_mex", "mex_rows"),
                                                         ("train_twosm", "twosm_rows"))
                 for row, spec in params[rows].items() if spec.get("q_from") == "q"}
    assert "train_mex@mexgan-cityscapes-0" in following
    trained = {name for name in ran if name.startswith("train_")}
    assert trained == following, (trained, following)
    assert {"row_expansion", "evaluate", "report"} <= ran
    assert not any(name.startswith(("translator", "prepare")) for name in ran)
    assert sweep_model.read_bytes() == before
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["mexgan-cityscapes"]["q"] == 2


@pytest.mark.slow
def test_queued_experiments_run_in_parallel_workers(project):
    """README's recipe for many rows at once: experiments queued with their own params (and a
    device each, here the CPU) and run by `dvc queue start -j 2`."""
    import time
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "baseline"], project)
    for value in (2, 3):
        run(["dvc", "exp", "run", "--queue", "-n", f"q1-is-{value}", "-S", f"q_sweep.q1={value}",
             "-S", "train.device=cpu"], project)
    run(["dvc", "queue", "start", "-j", "2"], project)
    deadline = time.time() + 900
    while time.time() < deadline:
        status = run(["dvc", "queue", "status"], project)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 2, status
    shown = run(["dvc", "exp", "show", "--json"], project)
    for value in (2, 3):
        assert f"q1-is-{value}" in shown
    run(["dvc", "queue", "stop"], project)


def check_table3_without_rows(project, params):
    """A profile that leaves Table 3's rows out (`inpainting_rows: {}`, as the CPU study does):
    evaluate_inpainting scores the floors only; its models folder still exists (the rows
    manifest stage writes into it), so DVC finds every dependency. Run in a project that has
    trained the rows, with their models folder removed: as in a project that never had any."""
    params = {**params, "inpainting_rows": {}}
    with open(project / "params.yaml", "w") as f:
        yaml.safe_dump(params, f, sort_keys=False)
    shutil.rmtree(project / "artifacts" / "inpainting" / "models")
    run(["dvc", "repro", "evaluate_inpainting"], project)
    metrics = json.loads((project / "reports" / "inpainting_metrics.json").read_text())
    assert metrics and all(name.startswith("floor-") for name in metrics), metrics
    manifest = json.loads((project / "artifacts" / "inpainting" / "models" /
                           "rows.json").read_text())
    assert manifest == {"rows": {}, "seeds": params["seeds"]}
