"""The CI gate's comparisons of metrics files: it compares commits, not machines.

Exact mode (a portable CPU run, the default: bit-identical on any AVX2+ x86-64 CPU, see
docs/portability.md): every committed value of reports/metrics.json must come out bit-identical;
every difference, missing row or extra row is one line
"metrics not reproduced: <row>.<metric> committed X reproduced Y"; then exit status 1.

Commits mode (bit-exactness across machines is not guaranteed: a CUDA device, or
train.portable false): HEAD~1 and HEAD are both reproduced on this machine and compared with
each other. A metric whose committed value did not change between the two commits must come out
identical in the two reproductions ("changed without a committed change"); a metric whose
committed value changed must change in the reproductions too ("committed change not
reproduced"). Either is one line and exit status 1; the metrics that changed as committed are
listed too.

reports/resources.json (training time, memory) varies from run to run and is never compared.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

METRICS = "reports/metrics.json"


class _Missing:
    def __repr__(self):
        return "(missing)"


MISSING = _Missing()


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"row": {"metric": v}} -> {"row.metric": v} (any depth, as `dvc metrics` names them)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _same(a, b, tolerance: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and (math.isnan(a) or math.isnan(b)):
        return math.isnan(a) and math.isnan(b)
    numbers = (int, float)
    if tolerance and isinstance(a, numbers) and isinstance(b, numbers):
        return abs(a - b) <= tolerance
    return a == b


def differences(committed: dict, reproduced: dict, tolerance: float = 0.0) -> list:
    """One message per metric that the reproduced run does not match (sorted by name)."""
    old, new = flatten(committed), flatten(reproduced)
    lines = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name, MISSING), new.get(name, MISSING)
        if a is MISSING or b is MISSING or not _same(a, b, tolerance):
            lines.append(f"metrics not reproduced: {name} committed {a!r} reproduced {b!r}")
    return lines


def committed_metrics(rev: str, path: str = METRICS, missing_ok: bool = False) -> dict:
    """The metrics file as committed at `rev` (git show); {} if the commit has none and
    missing_ok."""
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if result.returncode != 0:
        if missing_ok and subprocess.run(["git", "rev-parse", "--verify", "--quiet",
                                          f"{rev}^{{commit}}"],
                                         capture_output=True).returncode == 0:
            return {}
        raise RuntimeError(f"git show {rev}:{path} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


#---------------------------------------------------------------------------------------------
# Which gate: exact (portable CPU run) or commits (same-machine reproductions of HEAD~1 and HEAD)

EXACT, COMMITS = "exact", "commits"


def gate_mode(run_conditions: dict) -> tuple:
    """(mode, reason) for a reproduced run, from its reports/run_conditions.json: commits for a
    CUDA device or a run with portable mode off, exact otherwise (a run that predates the
    platform record counts as portable, the old behaviour)."""
    device = str(run_conditions.get("device", "cpu"))
    platform = run_conditions.get("platform")
    portable = platform.get("portable") if isinstance(platform, dict) else None
    if not device.startswith("cpu"):
        return COMMITS, (f"device {device}: GPU results are not bit-identical across GPU models, "
                         "drivers or library versions")
    if portable is False:
        return COMMITS, ("train.portable is false (or MEXGAN_PORTABLE=0): CPU results depend on "
                         "the CPU model")
    if portable is None:
        return EXACT, "CPU run without a platform record (assumed portable)"
    return EXACT, "portable CPU run: bit-identical on any x86-64 CPU with AVX2"


def changed(old: dict, new: dict) -> set:
    """Flat names of the metrics whose value differs between two metrics trees (a metric that
    is missing on one side counts as changed)."""
    a, b = flatten(old), flatten(new)
    return {name for name in set(a) | set(b)
            if name not in a or name not in b or not _same(a[name], b[name], 0.0)}


def compare_commits(committed_prev: dict, committed_head: dict, reproduced_prev: dict,
                    reproduced_head: dict) -> tuple:
    """Commits mode. Returns (failures, changed_as_committed, unchanged): lists of lines
    (failures, changed) and the number of metrics unchanged in both. A failure is a metric that
    changed in the reproductions although its committed value did not, one whose committed
    change did not show up in the reproductions, or one that HEAD's reproduction lacks or adds
    (against HEAD's committed metrics)."""
    committed_diff = changed(committed_prev, committed_head)
    reproduced_diff = changed(reproduced_prev, reproduced_head)
    cp, ch = flatten(committed_prev), flatten(committed_head)
    rp, rh = flatten(reproduced_prev), flatten(reproduced_head)
    names = sorted(set(cp) | set(ch) | set(rp) | set(rh))
    failures, as_committed, unchanged = [], [], 0
    for name in names:
        was, now = cp.get(name, MISSING), ch.get(name, MISSING)
        got_prev, got_head = rp.get(name, MISSING), rh.get(name, MISSING)
        if (now is MISSING) != (got_head is MISSING):  # HEAD's run lacks or adds a metric
            failures.append(f"metrics not reproduced: {name} committed {now!r} reproduced "
                            f"{got_head!r}")
        elif name in committed_diff and name in reproduced_diff:
            as_committed.append(f"changed as committed: {name} committed {was!r} -> {now!r}, "
                                f"reproduced {got_prev!r} -> {got_head!r}")
        elif name in committed_diff:
            failures.append(f"committed change not reproduced: {name} committed {was!r} -> "
                            f"{now!r}, but HEAD~1 and HEAD both reproduce {got_head!r}")
        elif name in reproduced_diff:
            failures.append(f"changed without a committed change: {name} committed {now!r} at "
                            f"both commits, reproduced {got_prev!r} -> {got_head!r}")
        else:
            unchanged += 1
    return failures, as_committed, unchanged


def check_commits(committed_prev: dict, committed_head: dict, reproduced_prev: dict,
                  reproduced_head: dict, out=None) -> bool:
    """Print the commits-mode verdict (to out, default stdout); True when it passes."""
    out = out or sys.stdout
    failures, as_committed, unchanged = compare_commits(committed_prev, committed_head,
                                                        reproduced_prev, reproduced_head)
    for line in as_committed + failures:
        print(line, file=out)
    summary = (f"{unchanged} metrics unchanged at both commits and in both reproductions, "
               f"{len(as_committed)} changed as committed, {len(failures)} failed")
    if failures:
        print(f"{summary}. If the change is intended, run `dvc repro` and commit dvc.lock and "
              "reports/ with it; otherwise something made the run nondeterministic.", file=out)
        return False
    print(f"metrics compared across commits: {summary}", file=out)
    return True


def check(committed: dict, reproduced: dict, tolerance: float = 0.0, out=None) -> bool:
    """Print the verdict (to out, default stdout); True when every committed metric matches."""
    out = out or sys.stdout
    lines = differences(committed, reproduced, tolerance)
    rule = "exactly" if tolerance == 0 else f"within {tolerance:g}"
    if lines:
        print("\n".join(lines), file=out)
        print(f"{len(lines)} of {len(flatten(committed))} committed metrics not reproduced "
              f"{rule}. If the change is intended, run `dvc repro` and commit dvc.lock and "
              "reports/; otherwise something made the run nondeterministic.", file=out)
        return False
    print(f"metrics reproduced: all {len(flatten(committed))} values of {len(committed)} rows "
          f"match {rule}", file=out)
    return True
