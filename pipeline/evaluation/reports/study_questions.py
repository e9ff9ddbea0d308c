"""The questions a CPU study asks (its rows, the paper's comparisons between them) and how an
answer is read off a paired difference's 95 % interval."""
from __future__ import annotations

from typing import NamedTuple

import pandas as pd


class StudyRows(NamedTuple):
    """A study's row set: `steps`, the paper's comparisons as (row a, row b, name of a, name of
    b); `trained`, its trained rows in table order; `table`, the paper table they are from."""
    steps: list
    trained: list
    table: str


def study_rows(params, dataset: str) -> StudyRows:
    """The Table 2 rows (TwoSM, +Full, +Full+MEx, +Full+A-MEx) when the study has TwoSM rows,
    else the Table 1 rows (Pix2PixHD, MExGAN, A-MExGAN)."""
    if params.twosm_rows:
        local, full, full_mex, full_amex = (f"{p}-{dataset}" for p in (
            "twosm", "twosm-full", "twosm-full-mex", "twosm-full-amex"))
        steps = [(full, local, "TwoSM+Full", "TwoSM"),
                 (full_mex, full, "TwoSM+Full+MEx", "TwoSM+Full"),
                 (full_amex, full, "TwoSM+Full+A-MEx", "TwoSM+Full")]
        return StudyRows(steps, [local, full, full_mex, full_amex], "table2")
    pix, mex, amex = (f"{p}-{dataset}" for p in ("pix2pixhd", "mexgan", "amexgan"))
    return StudyRows([(mex, pix, "MExGAN", "Pix2PixHD"), (amex, mex, "A-MExGAN", "MExGAN")],
                     [pix, mex, amex], "table1")


def verdict(frame: pd.DataFrame, a: str, b: str, metric: str, direction: int = 1) -> str:
    """'yes' / 'no, it is worse' / 'cannot tell' for "does a beat b?" from the paired interval
    of a − b; direction -1 for a metric where lower is better (L1)."""
    line = frame[(frame["comparison"] == f"{a} − {b}") & (frame["metric"] == metric)]
    if not len(line):
        return f"{a} − {b}: not in this run"
    d = line.iloc[0]
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
    line = frame[(frame["comparison"] == f"{a} − {b}") & (frame["metric"] == metric)]
    if not len(line):
        return None
    d = line.iloc[0]
    return 0 if d["excludes_0"] != "yes" else (1 if direction * d["difference"] > 0 else -1)


ANSWER_WORDS = {1: "beats", -1: "is worse than", 0: "cannot be told apart from",
                None: "was not run"}
