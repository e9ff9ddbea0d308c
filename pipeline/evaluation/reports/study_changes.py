"""A study's answers beside an earlier run of the same study (another synthetic world, other
code): which questions changed their answer, read off each run's own paired intervals."""
from __future__ import annotations

import pandas as pd

from pipeline.evaluation.reports.study_questions import difference_line, resolved_side

SHORT_ANSWERS = {1: "yes", -1: "no, worse", 0: "cannot tell", None: "not asked"}


def _cell(frame: pd.DataFrame, a: str, b: str, metric: str, direction: int) -> str:
    d = difference_line(frame, a, b, metric)
    if d is None:
        return "not asked"
    side = resolved_side(frame, a, b, metric, direction)
    return (f"{SHORT_ANSWERS[side]}: {d['difference']:+.3f} "
            f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")


def changed_answers(questions, differences: pd.DataFrame, previous: pd.DataFrame,
                    metric: str = "tiou", direction: int = 1) -> tuple:
    """(markdown table lines, questions whose answer changed) for `questions` ((text, a, b):
    does a beat b?) answered from this run's `differences` and the `previous` run's (both
    differences.csv frames): the answer yes / no / cannot tell with the paired difference and
    its 95 % interval in each run, and whether the answer changed (a question one run did not
    ask is not counted as changed); direction -1 for a metric where lower is better (L1)."""
    lines = [f"| question | before ({metric}) | now ({metric}) | answer changed |",
             "|---|---|---|---|"]
    changed = []
    for text, a, b in questions:
        before, now = (resolved_side(frame, a, b, metric, direction)
                       for frame in (previous, differences))
        moved = before is not None and now is not None and before != now
        changed += [text] if moved else []
        lines.append(f"| {text} | {_cell(previous, a, b, metric, direction)} | "
                     f"{_cell(differences, a, b, metric, direction)} | "
                     f"{'**yes**' if moved else 'no'} |")
    return lines, changed
