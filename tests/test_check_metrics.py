"""The CI gate's choice (exact vs commits) and the commits-mode comparison
(pipeline.evaluation.metrics_gate): pure functions on dicts (the exact mode's tests are in
test_reports.py)."""
import io
import json
import math
import os
import subprocess
import sys

from pipeline.evaluation import metrics_gate as cm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PREV = {"pix2pixhd-cityscapes": {"tiou": 0.5, "hamm": 0.25, "fid": 12.0},
        "mexgan-cityscapes": {"tiou": 0.6, "hamm": 0.2, "fid": 11.0}}


def tree(**changes):
    """PREV with some values replaced: tree(**{"mexgan-cityscapes.tiou": 0.7})."""
    out = json.loads(json.dumps(PREV))
    for name, value in changes.items():
        row, metric = name.rsplit(".", 1)
        if value is cm.MISSING:
            out[row].pop(metric)
        else:
            out.setdefault(row, {})[metric] = value
    return out


# --- which gate --------------------------------------------------------------------------------

def test_portable_cpu_run_gets_the_exact_gate():
    mode, reason = cm.gate_mode({"device": "cpu", "platform": {"portable": True}})
    assert mode == cm.EXACT and "portable" in reason


def test_cuda_run_gets_the_commits_gate_even_when_portable():
    mode, reason = cm.gate_mode({"device": "cuda:0", "platform": {"portable": True}})
    assert mode == cm.COMMITS and "GPU" in reason
    assert cm.gate_mode({"device": "cuda"})[0] == cm.COMMITS


def test_portable_off_gets_the_commits_gate():
    mode, reason = cm.gate_mode({"device": "cpu", "platform": {"portable": False}})
    assert mode == cm.COMMITS and "portable" in reason


def test_run_without_platform_record_keeps_the_old_exact_gate():
    assert cm.gate_mode({"device": "cpu"})[0] == cm.EXACT
    assert cm.gate_mode({})[0] == cm.EXACT


# --- commits mode ------------------------------------------------------------------------------

def test_nothing_committed_changed_and_nothing_reproduced_changed_passes():
    # the reproductions are on another machine: other values than committed, the same twice
    other = tree(**{"mexgan-cityscapes.tiou": 0.61, "pix2pixhd-cityscapes.fid": 12.5})
    failures, as_committed, unchanged = cm.compare_commits(PREV, PREV, other, other)
    assert failures == [] and as_committed == [] and unchanged == 6
    out = io.StringIO()
    assert cm.check_commits(PREV, PREV, other, other, out=out)
    assert "6 metrics unchanged" in out.getvalue()


def test_uncommitted_change_fails_naming_the_metrics():
    """`profiles.paper.lambda_feat: 2.0` committed without rerunning dvc repro: the committed
    metrics are those of HEAD~1, the reproductions differ."""
    head = tree(**{"mexgan-cityscapes.tiou": 0.55, "pix2pixhd-cityscapes.hamm": 0.3})
    failures, as_committed, unchanged = cm.compare_commits(PREV, PREV, PREV, head)
    assert failures == [
        "changed without a committed change: mexgan-cityscapes.tiou committed 0.6 at both "
        "commits, reproduced 0.6 -> 0.55",
        "changed without a committed change: pix2pixhd-cityscapes.hamm committed 0.25 at both "
        "commits, reproduced 0.25 -> 0.3"]
    assert as_committed == [] and unchanged == 4
    out = io.StringIO()
    assert not cm.check_commits(PREV, PREV, PREV, head, out=out)
    assert "2 failed" in out.getvalue() and "dvc repro" in out.getvalue()


def test_committed_change_that_the_reproductions_show_passes_and_is_listed():
    committed_head = tree(**{"mexgan-cityscapes.fid": 10.0})
    repro_prev = tree(**{"mexgan-cityscapes.fid": 11.2})  # another machine's bits
    repro_head = tree(**{"mexgan-cityscapes.fid": 10.4})
    failures, as_committed, unchanged = cm.compare_commits(PREV, committed_head, repro_prev,
                                                           repro_head)
    assert failures == [] and unchanged == 5
    assert as_committed == ["changed as committed: mexgan-cityscapes.fid committed 11.0 -> "
                            "10.0, reproduced 11.2 -> 10.4"]


def test_committed_change_that_the_reproductions_do_not_show_fails():
    committed_head = tree(**{"mexgan-cityscapes.fid": 10.0})
    failures, _, _ = cm.compare_commits(PREV, committed_head, PREV, PREV)
    assert failures == ["committed change not reproduced: mexgan-cityscapes.fid committed 11.0 "
                        "-> 10.0, but HEAD~1 and HEAD both reproduce 11.0"]


def test_new_and_removed_metrics():
    added = tree(**{"amexgan-cityscapes.tiou": 0.4})
    # a row added at HEAD, reproduced at HEAD only: changed as committed
    failures, as_committed, _ = cm.compare_commits(PREV, added, PREV, added)
    assert failures == [] and len(as_committed) == 1 and "amexgan" in as_committed[0]
    # HEAD's reproduction lacks a committed metric
    lacking = tree(**{"mexgan-cityscapes.hamm": cm.MISSING})
    failures, _, _ = cm.compare_commits(PREV, PREV, lacking, lacking)
    assert failures == ["metrics not reproduced: mexgan-cityscapes.hamm committed 0.2 "
                        "reproduced (missing)"]
    # ... or has one more than committed
    failures, _, _ = cm.compare_commits(PREV, PREV, added, added)
    assert failures == ["metrics not reproduced: amexgan-cityscapes.tiou committed (missing) "
                        "reproduced 0.4"]


def test_previous_commit_without_metrics():
    failures, as_committed, unchanged = cm.compare_commits({}, PREV, {}, PREV)
    assert failures == [] and len(as_committed) == 6 and unchanged == 0


def test_nan_equals_nan():
    nan = tree(**{"mexgan-cityscapes.fid": math.nan})
    assert cm.compare_commits(nan, nan, nan, nan) == ([], [], 6)
    assert cm.changed(nan, nan) == set()
    assert cm.changed(PREV, nan) == {"mexgan-cityscapes.fid"}


def test_changed_names_nested_metrics():
    assert cm.changed({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}, "d": 1}}) == {"a.b.c", "a.d"}


def test_cli_mode_of_and_commits(tmp_path):
    conditions = tmp_path / "run_conditions.json"
    conditions.write_text(json.dumps({"device": "cpu", "platform": {"portable": False}}))
    done = subprocess.run([sys.executable, "-m", "stages.check_metrics", "--mode-of",
                           str(conditions)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    mode, reason = done.stdout.rstrip("\n").split("\t")
    assert mode == "commits" and reason
    # commits mode against the repository's own history: HEAD vs HEAD, reproductions differ
    committed = json.loads(subprocess.run(["git", "show", "HEAD:reports/metrics.json"],
                                          cwd=ROOT, capture_output=True, text=True).stdout)
    prev, head = tmp_path / "prev.json", tmp_path / "head.json"
    prev.write_text(json.dumps(committed))
    row = next(iter(committed))
    metric = next(iter(committed[row]))
    changed = json.loads(json.dumps(committed))
    changed[row][metric] = 123.0
    head.write_text(json.dumps(changed))
    done = subprocess.run([sys.executable, "-m", "stages.check_metrics", "--commits",
                           "--prev-rev", "HEAD", "--rev", "HEAD", "--reproduced-prev", str(prev),
                           "--reproduced", str(head)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert f"changed without a committed change: {row}.{metric}" in done.stdout
