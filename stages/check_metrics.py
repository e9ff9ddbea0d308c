"""The CI gate: it compares commits, not machines.

  python -m stages.check_metrics                       # HEAD:reports/metrics.json vs the file
  python -m stages.check_metrics --committed OLD.json --reproduced reports/metrics.json
  python -m stages.check_metrics --rev HEAD~1 --tolerance 1e-9
  python -m stages.check_metrics --mode-of REPRO/reports/run_conditions.json   # exact | commits
  python -m stages.check_metrics --commits --prev-rev HEAD~1 --rev HEAD \
      --reproduced-prev PREV/reports/metrics.json --reproduced HEAD/reports/metrics.json

The two modes (exact: bit-identical to the committed values; commits: HEAD~1 and HEAD
reproduced on this machine) are pipeline.evaluation.metrics_gate's.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.evaluation.metrics_gate import (METRICS, check, check_commits, committed_metrics,
                                              gate_mode)
from stages.common import run


def read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--committed", help="the committed metrics, as a file")
    source.add_argument("--rev", default="HEAD",
                        help=f"take the committed metrics from git: REV:{METRICS} (default HEAD)")
    parser.add_argument("--file", default=METRICS,
                        help=f"the metrics file, relative to the repository (default {METRICS}; "
                             "Table 3: reports/inpainting_metrics.json)")
    parser.add_argument("--reproduced", help="the reproduced metrics (default: --file)")
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="largest accepted absolute difference (default 0: bit-exact)")
    parser.add_argument("--mode-of", metavar="RUN_CONDITIONS",
                        help="print the gate for a reproduced run's run_conditions.json: "
                             "'exact<TAB>reason' or 'commits<TAB>reason', and exit")
    parser.add_argument("--commits", action="store_true",
                        help="commits mode: compare the reproductions of --prev-rev and --rev")
    parser.add_argument("--prev-rev", default="HEAD~1")
    parser.add_argument("--reproduced-prev", help="commits mode: metrics reproduced at --prev-rev")
    args = parser.parse_args()
    if args.mode_of:
        mode, reason = gate_mode(read(args.mode_of))
        print(f"{mode}\t{reason}")
        return
    reproduced = args.reproduced or args.file
    if args.commits:
        if not args.reproduced_prev:
            raise ValueError("--commits needs --reproduced-prev")
        ok = check_commits(committed_metrics(args.prev_rev, args.file, missing_ok=True),
                           committed_metrics(args.rev, args.file), read(args.reproduced_prev),
                           read(reproduced))
    else:
        committed = (read(args.committed) if args.committed
                     else committed_metrics(args.rev, args.file))
        ok = check(committed, read(reproduced), args.tolerance)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    run(main)
