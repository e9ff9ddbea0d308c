"""The CPU study profile: a fast dry run of `make study` and its summary on a fake result."""
import os
import subprocess

import pandas as pd
import pytest

from pipeline.config.loading import load_params
from pipeline.evaluation.reports.curves import first_step_above
from pipeline.evaluation.reports.study_summary import study_summary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_study_profile_loads_and_trains_every_row_with_three_seeds():
    params = load_params(os.path.join(REPO, "params_study.yaml"))
    assert list(params.datasets) == ["cityscapes"] and len(params.seeds) >= 3
    assert {row.loss for row in params.rows.values()} == {"pix2pixhd", "mex", "amex"}
    assert params.train.eval_every > 0


SCRATCH = os.path.join(REPO, ".study")


def scratch_params_mtimes() -> dict:
    """The modification times of the resumable scratch copies' params (those that exist)."""
    paths = (os.path.join(SCRATCH, prof, "repo", "params.yaml") for prof in ("paper", "authors"))
    return {p: os.path.getmtime(p) for p in paths if os.path.exists(p)}


@pytest.fixture(scope="module")
def dry_run():
    """`DRY=1 tools/study.sh PROFILE`, run once per profile for this module's tests (each run
    copies the tree and commits it in a scratch repository: seconds). `dry_run.scratch_before`:
    scratch_params_mtimes() before the module's first dry run."""
    results = {}

    def run(profile):
        if profile not in results:
            results[profile] = subprocess.run(["bash", "tools/study.sh", profile], cwd=REPO,
                                              capture_output=True, text=True,
                                              env=dict(os.environ, DRY="1"), timeout=300)
        return results[profile]

    run.scratch_before = scratch_params_mtimes()
    return run


@pytest.mark.parametrize("profile", ["paper", "authors"])
def test_study_dry_run_lists_the_stages_it_would_run(profile, dry_run):
    result = dry_run(profile)
    assert result.returncode == 0, result.stdout + result.stderr
    stages = [line.split()[-1] for line in result.stdout.splitlines()
              if line.startswith("would run")]
    params = load_params(os.path.join(REPO, "params_study.yaml"))
    for row in params.rows:
        group = "train_baseline" if row in params.baselines else "train_mex"
        for seed in params.seeds:
            assert f"{group}@{row}-{seed}" in stages
    assert "prepare@cityscapes" in stages and "prepare@nyu" not in stages
    assert {"evaluate", "report"} <= set(stages)


def test_real_study_profile_trains_on_real_maps_at_256x128(dry_run):
    """`make study PROFILE=real`: its params file names the shared video frames (seen from the
    scratch copy through its ../shared link), holds whole sequences out, and its dry run lists
    every TwoSM run of its seeds."""
    params = load_params(os.path.join(REPO, "params_study_real.yaml"))
    assert params.data.source_of("cityscapes") == "real" and params.data.box_rule == "tight"
    assert params.data.val_sequences and params.data.raw_dir.startswith("../shared/")
    size = params.datasets["cityscapes"]
    assert (size.width, size.height) == (256, 128)
    result = dry_run("real")
    assert result.returncode == 0, result.stdout + result.stderr
    stages = [line.split()[-1] for line in result.stdout.splitlines()
              if line.startswith("would run")]
    for row in params.twosm_rows:
        for seed in params.seeds:
            assert f"train_twosm@{row}-{seed}" in stages


def test_make_study_target_runs_the_study_script():
    result = subprocess.run(["make", "-n", "study", "DRY=1"], cwd=REPO, capture_output=True,
                            text=True, env={k: v for k, v in os.environ.items()
                                            if not k.startswith("MAKE")}, timeout=60)
    assert result.returncode == 0 and "DRY=1 FINISH=0 STATUS=0 JOBS= tools/study.sh all" in result.stdout


def test_study_refuses_an_unknown_profile():
    result = subprocess.run(["bash", "tools/study.sh", "nvidia"], cwd=REPO, capture_output=True,
                            text=True, env=dict(os.environ, DRY="1"), timeout=60)
    assert result.returncode != 0
    assert "paper, authors, twosm, gl, real, real_mex, real_colour or all" in result.stderr


def test_study_refuses_huev_rows_it_does_not_train_before_training(tmp_path):
    """The real_mex sitting once trained for two hours and then failed in the huev stage on
    huev.rows naming the first sitting's rows: the dry run refuses that in one line."""
    with open(os.path.join(REPO, "params_study_real_mex.yaml")) as f:
        text = f.read()
    bad = tmp_path / "params_bad_huev.yaml"
    bad.write_text(text.replace(
        "rows: [twosm-full-mex-cityscapes, twosm-full-amex-cityscapes]",
        "rows: [twosm-full-cityscapes, twosm-cityscapes]"))
    assert bad.read_text() != text
    result = subprocess.run(["bash", "tools/study.sh", "real_mex"], cwd=REPO, capture_output=True,
                            text=True, timeout=120,
                            env=dict(os.environ, DRY="1", STUDY_REAL_MEX_PARAMS=str(bad)))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {bad}: huev.rows: 'twosm-full-cityscapes' not allowed (rows of params.yaml: "
        "twosm-full-mex-cityscapes, twosm-full-amex-cityscapes)")


def test_study_dry_run_leaves_the_resumable_scratch_copies_alone(dry_run):
    """A dry run (also the tests') must not overwrite .study/<profile>, which a running study
    reads its params and code from (checked after every dry run of this module so far)."""
    result = dry_run("paper")
    assert result.returncode == 0, result.stderr
    assert "mexgan-study-dry" in result.stdout
    before = dry_run.scratch_before
    assert {p: os.path.getmtime(p) for p in before} == before


@pytest.mark.parametrize("old, new, message", [
    ("seeds:", "seedz:", "seedz: unknown key"),
    # a param that a stage of dvc.yaml declares: DVC itself would fail only when the study
    # reached that stage (as it once did at prepare_inpainting)
    ("  test_holes: 20\n", "",
     "lacks an input of a stage: prepare_inpainting: inpainting.test_holes")])
def test_study_dry_run_refuses_a_bad_profile(tmp_path, old, new, message):
    bad = tmp_path / "study.yaml"
    bad.write_text(open(os.path.join(REPO, "params_study.yaml")).read().replace(old, new))
    result = subprocess.run(["bash", "tools/study.sh", "paper"], cwd=REPO,
                            capture_output=True, text=True,
                            env=dict(os.environ, DRY="1", STUDY_PARAMS=str(bad)), timeout=300)
    assert result.returncode != 0
    assert message in result.stderr


def test_first_step_above_uses_the_seed_mean():
    curves = {0: ([100, 200, 300], [0.5, 0.7, 0.9]), 1: ([100, 200, 300], [0.5, 0.9, 0.9])}
    assert first_step_above(curves, 0.75) == 200   # mean 0.8 at step 200
    assert first_step_above(curves, 0.95) is None


def test_study_summary_answers_plainly_including_no():
    params = load_params(os.path.join(REPO, "params_study.yaml"))
    differences = pd.DataFrame([
        {"comparison": "mexgan-cityscapes − pix2pixhd-cityscapes", "metric": m,
         "difference": 0.2, "ci_low": 0.1, "ci_high": 0.3, "excludes_0": "yes"}
        for m in ("tiou", "hamm")] + [
        {"comparison": "amexgan-cityscapes − mexgan-cityscapes", "metric": m,
         "difference": 0.01, "ci_low": -0.05, "ci_high": 0.07, "excludes_0": "no"}
        for m in ("tiou", "hamm")] + [
        {"comparison": f"{row} − floor-fill-box-cityscapes", "metric": m,
         "difference": -0.3, "ci_low": -0.4, "ci_high": -0.2, "excludes_0": "yes"}
        for row in ("pix2pixhd-cityscapes", "mexgan-cityscapes", "amexgan-cityscapes")
        for m in ("tiou", "hamm")])
    metrics = {row: {"tiou": 0.5, "hamm": 0.5, "test_boxes": 55}
               for row in ("pix2pixhd-cityscapes", "mexgan-cityscapes", "amexgan-cityscapes",
                           "floor-fill-box-cityscapes", "floor-mean-mask-cityscapes")}
    curves = {"mexgan-cityscapes": {0: {"tiou": ([100, 200], [0.1, 0.2])}}}
    text = study_summary(metrics=metrics, differences=differences, eval_curves=curves,
                         held_back={"tiou": {"floor-fill-box-cityscapes": 0.8}}, params=params,
                         wall_seconds=3000, platform="test CPU")
    assert "| Does MExGAN beat Pix2PixHD? | **yes**: tiou" in text
    assert "| Does A-MExGAN beat MExGAN? | **cannot tell** (the interval includes 0)" in text
    assert "Does pix2pixhd-cityscapes beat the fill-box floor? | **no, it is worse**" in text
    assert "tiou: never within 200 steps" in text
    assert "Wall time 50 min (test CPU)" in text
    assert ("**In short:** on tIOU, MExGAN beats Pix2PixHD, A-MExGAN cannot be told apart from "
            "MExGAN, and no trained row beats the fill-box floor at this budget.") in text


def test_late_gain_over_the_last_fifth_of_the_seed_mean_curve():
    from pipeline.evaluation.reports.curves import late_gain
    steps = [100, 200, 300, 400, 500]
    curves = {0: (steps, [0.1, 0.3, 0.5, 0.6, 0.7]), 1: (steps, [0.1, 0.3, 0.5, 0.64, 0.66])}
    # seed mean at 400 (the first step >= 0.8 * 500) is 0.62, at 500 it is 0.68
    assert late_gain(curves) == pytest.approx(0.06)
    assert late_gain(curves, fraction=0.5) == pytest.approx(0.68 - 0.5)


def test_study_summary_reports_flatness_floors_diagnostics_and_classes():
    params = load_params(os.path.join(REPO, "params_study.yaml"))
    rows = ("pix2pixhd-cityscapes", "mexgan-cityscapes", "amexgan-cityscapes")
    floors = ("floor-fill-box-cityscapes", "floor-mean-mask-cityscapes")
    differences = pd.DataFrame([
        {"comparison": f"{row} − {floor}", "metric": m, "difference": -0.1, "ci_low": -0.2,
         "ci_high": -0.05, "excludes_0": "yes"} for row in rows for floor in floors
        for m in ("tiou", "hamm")])
    metrics = {row: {"tiou": 0.5, "hamm": 0.5, "test_boxes": 4} for row in rows + floors}
    steps = [255 * k for k in range(1, 11)]
    curves = {"mexgan-cityscapes": {0: {"tiou": (steps, [0.1 * k for k in range(1, 11)])}},
              "pix2pixhd-cityscapes": {0: {"tiou": (steps, [0.5] * 8 + [0.51, 0.515])}},
              # three points: flat by the rule between the last two, too coarse to say so
              "amexgan-cityscapes": {0: {"tiou": ([255, 510, 540], [0.3, 0.6, 0.601])}}}
    diagnostics = pd.DataFrame([
        {"row": "mexgan-cityscapes", "seed": s, "image": "a", "label": 26,
         "outside_decode_accuracy": 0.99, "target_share": 0.6 + 0.1 * s,
         "kept_true_share": 0.3 - 0.1 * s, "other_share": 0.1, "largest_blob_share": 0.9}
        for s in (0, 1)])
    scores = pd.DataFrame([
        {"row": row, "dataset": "cityscapes", "seed": 0, "image": f"i{k}", "label": label,
         "tiou": value, "hamm": value}
        for row in rows + floors for k, (label, value) in enumerate([(26, 0.8), (26, 0.6),
                                                                     (24, 0.3)])])
    names = [f"class{i}" for i in range(34)]
    text = study_summary(metrics=metrics, differences=differences, eval_curves=curves,
                         held_back={"tiou": {"floor-fill-box-cityscapes": 0.8}}, params=params,
                         wall_seconds=600, platform="test CPU", folder="study_authors",
                         scores=scores, diagnostics=diagnostics, label_names=names)
    assert "## CPU study, `paper` profile" in text
    assert "Does mexgan-cityscapes beat the mean-mask floor? | **no, it is worse**" in text
    # mexgan gains 1.0 - 0.8 = +0.2 over its last fifth (steps 2040..2550): not flat
    assert "| mexgan-cityscapes | 0.5000 | 0.5000 | +0.2000 | **no** |" in text
    assert "| pix2pixhd-cityscapes | 0.5000 | 0.5000 | +0.0150 | yes |" in text
    assert ("| amexgan-cityscapes | 0.5000 | 0.5000 | +0.0010 | **too few points (3)** to tell |"
            in text)
    assert "| mexgan-cityscapes | 0.9900 | 0.650 | 0.250 | 0.100 | 0.900 |" in text
    assert "- mexgan-cityscapes: its box is 65% l_t, 25% the true surroundings kept" in text
    assert "| row | class24 (1) | class26 (2) |" in text
    assert "| mexgan-cityscapes | 0.300 | 0.700 |" in text
    assert "(study_authors/figures/metric_curves_cityscapes.png)" in text


def test_report_shows_both_profiles_studies_paper_first(tmp_path):
    from pipeline.evaluation.reports.page import study_section
    (tmp_path / "study").mkdir()
    with pytest.raises(FileNotFoundError, match="make study"):
        study_section(str(tmp_path))
    (tmp_path / "study" / "summary.md").write_text("## CPU study, `paper` profile\n")
    assert study_section(str(tmp_path)) == "## CPU study, `paper` profile\n"
    (tmp_path / "study_authors").mkdir()
    (tmp_path / "study_authors" / "summary.md").write_text("## CPU study, `authors` profile\n")
    assert study_section(str(tmp_path)) == ("## CPU study, `paper` profile\n\n"
                                            "## CPU study, `authors` profile\n")


def test_study_finish_without_a_finished_study_says_so(tmp_path):
    result = subprocess.run(["bash", "tools/study.sh", "paper"], cwd=REPO, capture_output=True,
                            text=True, env=dict(os.environ, FINISH="1",
                                                STUDY_WORK=str(tmp_path)), timeout=60)
    assert result.returncode == 1
    assert "metrics.json does not exist: run the study first" in result.stderr



@pytest.mark.parametrize("profile, previous, message", [
    ("paper", "reports/study:{missing}",
     "error: PREVIOUS: {missing}/differences.csv does not exist"),
    ("gl", "reports/study_gl:{missing}",
     "error: PREVIOUS: {missing}/inpainting_metrics.json does not exist"),
    ("gl", "reports/study", "error: PREVIOUS: reports/study/inpainting_metrics.json does not "
     "exist")])
def test_study_refuses_a_bad_previous_run_before_training(tmp_path, profile, previous, message):
    """PREVIOUS is read by the summary, after hours of training: a folder that is not a study
    (the second of two here; a segmentation study for the Table 3 one) fails at once."""
    missing = str(tmp_path / "nowhere")
    result = subprocess.run(["bash", "tools/study.sh", profile], cwd=REPO, capture_output=True,
                            text=True, timeout=60,
                            env=dict(os.environ, STUDY_WORK=str(tmp_path),
                                     PREVIOUS=previous.format(missing=missing)))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == message.format(missing=missing)
    assert not os.path.exists(tmp_path / profile)   # no scratch copy was made

# Committed studies whose params.yaml differs from their params file today, and why; a study
# rerun with its params file must leave this list (the test fails while it is still named here)
STALE_STUDIES: dict = {}


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_committed_study_was_trained_with_its_params_file():
    """reports/<study>/params.yaml (what the study ran: its params file with `profile` set) equals
    the params file its summary names, key by key, except the studies STALE_STUDIES names."""
    import glob
    import re
    import yaml
    drift = {}
    for folder in sorted(glob.glob(os.path.join(REPO, "reports", "study*", ""))):
        name = os.path.basename(os.path.dirname(folder))
        with open(os.path.join(folder, "summary.md")) as f:
            found = re.search(r"\(`(params[a-z_]*\.yaml)`(?:, profile `(\w+)`)?", f.read())
        assert found, f"{name}/summary.md names no params file"
        with open(os.path.join(folder, "params.yaml")) as f:
            trained = _flat(yaml.safe_load(f))
        with open(os.path.join(REPO, found.group(1))) as f:
            current = yaml.safe_load(f)
        if found.group(2):
            current["profile"] = found.group(2)
        current = _flat(current)
        drift[name] = sorted(k for k in set(trained) | set(current)
                             if trained.get(k) != current.get(k))
    assert {name for name, keys in drift.items() if keys} == set(STALE_STUDIES), drift


@pytest.mark.parametrize("folder, boxes", [("study", 21), ("study_twosm", 16)])
def test_study_summary_redraws_the_curve_figure_with_the_held_back_box_count(tmp_path,
                                                                            monkeypatch, folder,
                                                                            boxes):
    """A study trained from a pinned copy brings that copy's curve figure; the summary step
    draws it again with this checkout's code, from the curves study.sh copied next to the
    summary. The committed paper study has 21 test boxes and eval_boxes 47: the title says 21;
    the twosm study's curves get each row's batch (8, its batch-1 variant 1)."""
    import shutil
    import sys

    import pipeline.evaluation.reports.run_figures as run_figures
    from stages import study_summary as stage

    study = os.path.join(REPO, "reports", folder)
    shutil.copytree(os.path.join(study, "train"), tmp_path / "train")
    drawn = []
    monkeypatch.setattr(run_figures, "plot_metric_curves",
                        lambda curves, floors, path, title, batch_sizes: drawn.append(
                            (sorted(curves), sorted(floors["tiou"]), path, title, batch_sizes)))
    monkeypatch.setattr(sys, "argv", [
        "study_summary", "--reports", study, "--params", os.path.join(study, "params.yaml"),
        "--out", str(tmp_path), "--wall-seconds", "60",
        "--diagnostics", os.path.join(study, "diagnostics.csv")])
    stage.main()
    params = load_params(os.path.join(study, "params.yaml"))
    assert params.train.eval_boxes >= boxes
    batches = {row: 1 if folder == "study" or "batch1" in row else 8 for row in params.rows}
    assert drawn == [(sorted(params.rows), ["floor-fill-box-cityscapes",
                                            "floor-mean-mask-cityscapes"],
                      str(tmp_path / "figures" / "metric_curves_cityscapes.png"),
                      f"cityscapes: tIOU / hamm on the first {boxes} test boxes during training",
                      batches)]


def test_curves_of_rows_at_other_batches_are_drawn_against_samples(tmp_path, monkeypatch):
    """Batch 8 beside batch 1: the x axis counts samples (step x batch); one batch: steps."""
    import pipeline.evaluation.reports.figures as figures

    saved = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: saved.append(fig))
    steps = [54, 108, 162]
    curves = {"batch8": {0: {"tiou": (steps, [0.5, 0.6, 0.7])}},
              "batch1": {0: {"tiou": ([100, 200], [0.4, 0.5])}}}
    floors = {"tiou": {"fill": 0.8}}
    figures.plot_metric_curves(curves, floors, str(tmp_path / "a.png"), "t",
                               batch_sizes={"batch8": 8, "batch1": 1})
    figures.plot_metric_curves(curves, floors, str(tmp_path / "b.png"), "t",
                               batch_sizes={"batch8": 8, "batch1": 8})
    for fig, label, batch8_x in ((saved[0], "training samples (step x batch)", 1296),
                                 (saved[1], "training step", 162)):
        ax = fig.axes[0]
        assert ax.get_xlabel() == label
        lines = {line.get_label(): line for line in ax.get_lines()}
        bold = [name for name in lines if name.startswith("batch8")]
        assert len(bold) == 1 and max(lines[bold[0]].get_xdata()) == batch8_x
    assert "batch8 (1 seed, batch 8)" in [line.get_label() for line in saved[0].axes[0].get_lines()]


def test_a_resumed_study_says_its_wall_time_is_the_last_sitting_and_what_its_runs_trained():
    """study.sh times only the sitting that finished the study; a study stopped and resumed
    (resumes in the runs' resources.json) must not pass that off as its whole wall time."""
    from pipeline.evaluation.reports.study_summary import wall_time_text
    assert wall_time_text(1290, "test CPU", [{"train_seconds": 900.0, "resumes": 0}] * 2) == \
        "Wall time 21 min (test CPU)"
    text = wall_time_text(1290, "test CPU", [{"train_seconds": 1620.0, "resumes": 2},
                                 {"train_seconds": 3000.0, "resumes": 0},
                                 {"train_seconds": 600.0, "resumes": 1}])
    assert text == ("Wall time of the last sitting 21 min (test CPU); stopped and resumed, the 3 "
                    "training runs trained 87 min in all over their sittings (3 resumes)"), text


def test_study_status_says_how_far_each_run_has_got(tmp_path):
    """`make study STATUS=1`: a run with its generator is done, one with a checkpoint of this
    study's epochs and of the scratch copy's code is part-trained at its epoch, one whose
    checkpoint was made for other epochs or by other code starts again (the trainer resumes only
    on its whole fingerprint), the rest are not started; the epochs done of all."""
    import json
    import shutil

    import torch

    from pipeline.training.runs import code_digest
    from tools.study_status import status_lines

    repo = tmp_path / "gl" / "repo"
    repo.mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "params_study_gl.yaml"), repo / "params.yaml")
    shutil.copytree(os.path.join(REPO, "pipeline"), repo / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "pipeline" / "scratch_only.py").write_text("# the scratch copy's code differs\n")
    code = code_digest(str(repo / "pipeline"))
    assert code != code_digest()
    params = load_params(str(repo / "params.yaml"))
    epochs = params.inpainting.epochs
    models = repo / "artifacts" / "inpainting" / "models"
    for row in ("gl-facade", "gl-amex-facade"):
        for seed in (0, 1, 2):
            (models / row / f"seed{seed}").mkdir(parents=True)
    (models / "gl-facade" / "seed0" / "generator.pt").write_bytes(b"")
    checkpoints = {("gl-facade", 1): (42, epochs, code), ("gl-facade", 2): (7, epochs - 60, code),
                   ("gl-amex-facade", 0): (11, epochs, code_digest())}
    for (row, seed), (epoch, made_for, made_by) in checkpoints.items():
        torch.save({"epoch": epoch, "fingerprint": json.dumps({"epochs": made_for,
                                                               "code": made_by})},
                   models / row / f"seed{seed}" / "checkpoint.pt")
    now = os.path.getmtime(models / "gl-facade" / "seed1" / "checkpoint.pt") + 180
    lines = status_lines(str(repo), now=now)
    runs = len(params.inpainting_rows) * len(params.seeds)
    assert len(lines) == runs + 1
    assert lines[0].split() == ["gl-facade", "seed0", "done"]
    assert lines[1].split()[:2] == ["gl-facade", "seed1"]
    assert lines[1].endswith(f"epoch 42 / {epochs} (newest checkpoint 3 min ago)")
    assert lines[2].endswith(f"a checkpoint of {epochs - 60} epochs (epoch 7 / {epochs - 60}): "
                             f"starts again, {epochs} epochs")
    assert lines[3].split()[:2] == ["gl-amex-facade", "seed0"]
    assert lines[3].endswith(f"a checkpoint of other code (epoch 11 / {epochs}): starts again, "
                             f"{epochs} epochs")
    assert lines[4].split() == ["gl-amex-facade", "seed1", "not", "started"]
    total = runs * epochs
    assert lines[-1] == (f"== 1 of {runs} runs done, 1 part-trained, {runs - 2} to start; "
                         f"{epochs + 42} of {total} epochs ({100 * (epochs + 42) / total:.0f} %)")


def test_study_status_without_a_study_says_so(tmp_path):
    result = subprocess.run(["bash", "tools/study.sh", "gl"], cwd=REPO, capture_output=True,
                            text=True, timeout=60,
                            env=dict(os.environ, STUDY_WORK=str(tmp_path), STATUS="1"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path}/gl/repo/params.yaml does not exist: no gl study has started there "
        "(STUDY_WORK=DIR names another place)"]
    assert not os.path.exists(tmp_path / "gl")
