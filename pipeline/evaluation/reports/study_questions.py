"""The questions a CPU study asks (its rows, the paper's comparisons between them) and how an
answer is read off a paired difference's 95 % interval."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from pipeline.evaluation.reports.paper_rows import (TABLE1, TABLE1_STEPS, TABLE2, TABLE2_STEPS,
                                                   row_of)


class StudyRows(NamedTuple):
    """A study's row set: `steps`, the paper's comparisons as (row a, row b, name of a, name of
    b); `trained`, its trained rows in table order; `table`, the paper table they are from."""
    steps: list
    trained: list
    table: str


def study_rows(params, dataset: str) -> StudyRows:
    """The Table 2 rows (TwoSM, +Full, +Full+MEx, +Full+A-MEx) when the study has TwoSM rows,
    else the Table 1 rows (Pix2PixHD, MExGAN, A-MExGAN), found by their params
    (pipeline.evaluation.reports.paper_rows; None for a role no row of params plays)."""
    roles, steps, table = ((TABLE2, TABLE2_STEPS, "table2") if params.twosm_rows
                           else (TABLE1, TABLE1_STEPS, "table1"))
    return StudyRows([(row_of(params, a, dataset), row_of(params, b, dataset), a.title, b.title)
                      for a, b in steps],
                     [row_of(params, role, dataset) for role in roles], table)


def joined(rows: StudyRows, other: StudyRows) -> StudyRows:
    """Two sittings of one study (the same table) as one: each role's row of `rows`, else of
    `other`."""
    def pick(mine, theirs):
        return theirs if mine is None else mine

    return StudyRows([(pick(a, c), pick(b, d), name_a, name_b)
                      for (a, b, name_a, name_b), (c, d, _, _) in zip(rows.steps, other.steps)],
                     [pick(a, b) for a, b in zip(rows.trained, other.trained)], rows.table)


def difference_line(frame: pd.DataFrame, a: str, b: str, metric: str):
    """The line of a differences frame (differences.csv) for a − b on `metric`, None when the
    run did not pair them."""
    line = frame[(frame["comparison"] == f"{a} − {b}") & (frame["metric"] == metric)]
    return line.iloc[0] if len(line) else None


def verdict(frame: pd.DataFrame, a: str, b: str, metric: str, direction: int = 1) -> str:
    """'yes' / 'no, it is worse' / 'cannot tell' for "does a beat b?" from the paired interval
    of a − b; direction -1 for a metric where lower is better (L1)."""
    d = difference_line(frame, a, b, metric)
    if d is None:
        return f"{a} − {b}: not in this run"
    if d["excludes_0"] == "yes":
        word = "**yes**" if direction * d["difference"] > 0 else "**no, it is worse**"
    else:
        word = "**cannot tell** (the interval includes 0)"
    return (f"{word}: {metric} {a} − {b} = {d['difference']:+.4f} "
            f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")


def resolved_side(frame: pd.DataFrame, a: str, b: str, metric: str = "tiou", direction: int = 1):
    """+1 / -1 when the paired interval of a − b excludes 0 on the better / worse side
    (direction -1: lower is better), 0 otherwise, None when the comparison is not in the
    frame."""
    d = difference_line(frame, a, b, metric)
    if d is None:
        return None
    return 0 if d["excludes_0"] != "yes" else (1 if direction * d["difference"] > 0 else -1)


ANSWER_WORDS = {1: "beats", -1: "is worse than", 0: "cannot be told apart from",
                None: "was not run"}
