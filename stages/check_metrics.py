"""Fail when a reproduced run's metrics differ from the committed ones (the CI gate).

  python -m stages.check_metrics                       # HEAD:reports/metrics.json vs the file
  python -m stages.check_metrics --committed OLD.json --reproduced reports/metrics.json
  python -m stages.check_metrics --rev HEAD~1 --tolerance 1e-9

Only reports/metrics.json is compared: the CPU demo is bit-reproducible, so the default is exact
equality. reports/resources.json (training time, memory) varies from run to run and is never
compared. Every difference, missing row or extra row is one line
"metrics not reproduced: <row>.<metric> committed X reproduced Y"; then exit status 1.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

from stages.common import run

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


def committed_metrics(rev: str, path: str = METRICS) -> dict:
    """The metrics file as committed at `rev` (git show)."""
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git show {rev}:{path} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--committed", help="the committed metrics, as a file")
    source.add_argument("--rev", default="HEAD",
                        help=f"take the committed metrics from git: REV:{METRICS} (default HEAD)")
    parser.add_argument("--reproduced", default=METRICS)
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="largest accepted absolute difference (default 0: bit-exact)")
    args = parser.parse_args()
    committed = read(args.committed) if args.committed else committed_metrics(args.rev)
    if not check(committed, read(args.reproduced), args.tolerance):
        sys.exit(1)


if __name__ == "__main__":
    run(main)
