"""The paper's tables in the paper's layout: one line per row and dataset, one column per
metric, each cell ours with its 95 % interval and the paired verdict against the floor, beside
the paper's value. Rendered from the long form (pipeline.evaluation.reports.tables'
comparison_table, inpainting_tables' inpainting_table: one line per row x metric), which stays
in reports/table<N>.csv."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.evaluation.floors import is_floor_row

# How a long-form metric is named in a column header.
METRIC_TITLES = {"tiou": "tIOU", "hamm": "hamm", "fid": "FID", "huev": "HuEv",
                 "ssim": "SSIM", "l1": "L1", "ssim_image": "SSIM (whole image)",
                 "l1_image": "L1 (whole image)", "mem_gpu_step_peak_mean_gb": "Mem (GB)"}
# Decimals per metric (the paper's: 4 for scores, 2 for FID, L1 and memory).
DECIMALS = {"fid": 2, "l1": 2, "l1_image": 2, "mem_gpu_step_peak_mean_gb": 2}
# The long form's vs_floor words -> the verdict shown in a cell.
VERDICTS = {"above floor": "above", "below floor": "below", "better than floor": "better",
            "worse than floor": "worse", "not distinguishable": "cannot tell"}
MISSING = "—"
LEGEND = (
    "Each `ours` cell: our value [95 % interval], then after `·` the paired verdict against "
    "the stronger floor of the row's dataset: above / below (the 95 % interval of the paired "
    "difference row − floor lies above / below 0; for L1, where lower is better: better / "
    "worse) or cannot tell (it includes 0). `paper`: the paper's value. A metric the run did "
    "not measure is {missing}; a stand-in has its own column and no paper value. Floor rows "
    "(no training) have no verdict. One line per row x metric, with ours − paper: the CSV of "
    "the same name.").format(missing=MISSING)


def metric_title(metric: str) -> str:
    """A column's metric name: the paper's name, or the long form's (stand-ins keep theirs)."""
    return METRIC_TITLES.get(metric, f"`{metric}`")


def number(value, metric: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if isinstance(value, str):
        return value
    decimals = DECIMALS.get(metric)
    if decimals is None and metric not in METRIC_TITLES:   # a stand-in: tiny or any scale
        return f"{value:.4g}"
    return f"{value:.{4 if decimals is None else decimals}f}"


def _present(value) -> bool:
    return not (value is None or (isinstance(value, float) and np.isnan(value))
                or (isinstance(value, str) and not value))


def ours_cell(line: dict) -> str:
    """'0.7315 [0.6800, 0.7700] · below': ours, its interval where it has one, the verdict;
    a HuEv line adds its votes."""
    metric = line["metric"]
    text = number(line.get("ours"), metric)
    if _present(line.get("ci_low")) and _present(line.get("ci_high")) and \
            _present(line.get("ours")) and not isinstance(line.get("ours"), str):
        text += f" [{number(line['ci_low'], metric)}, {number(line['ci_high'], metric)}]"
    verdict = line.get("vs_floor")
    if _present(verdict):
        text += f" · {VERDICTS.get(verdict, verdict)}"
    votes = line.get("votes")
    if _present(votes):
        text = votes if text == MISSING else f"{text}, {votes} votes"
    return text


def row_dataset(row: str) -> str:
    """The dataset of a row: its name's last part (every row and floor is <name>-<dataset>)."""
    return row.rsplit("-", 1)[-1] if "-" in row else ""


def wide_frame(long: pd.DataFrame, datasets=()) -> pd.DataFrame:
    """The paper's layout of a long-form table: a line per row (grouped by dataset, its floors
    after its trained rows), the seed count, and per metric `ours` (ours_cell) and, where the
    paper has the metric, `paper`."""
    records = long.to_dict("records")
    rows = list(dict.fromkeys(r["row"] for r in records))
    metrics = list(dict.fromkeys(r["metric"] for r in records))
    with_paper = {r["metric"] for r in records if _present(r.get("paper"))}
    known = list(datasets) + [row_dataset(r) for r in rows]
    known = list(dict.fromkeys(known))
    by_row = {}
    for record in records:
        by_row.setdefault(record["row"], {})[record["metric"]] = record
    order = []
    for dataset in known:
        here = [r for r in rows if row_dataset(r) == dataset]
        order += [r for r in here if not is_floor_row(r)] + [r for r in here if is_floor_row(r)]
    columns = ["dataset", "row", "seeds"]
    for metric in metrics:
        columns.append(f"{metric_title(metric)}: ours [95 %]")
        if metric in with_paper:
            columns.append(f"{metric_title(metric)}: paper")
    lines = []
    for row in order:
        cells = by_row[row]
        seeds = next((str(c["seeds"]) for c in cells.values() if _present(c.get("seeds"))),
                     MISSING)
        line = [row_dataset(row) or MISSING, row, seeds]
        for metric in metrics:
            cell = cells.get(metric)
            line.append(ours_cell(cell) if cell else "")
            if metric in with_paper:
                line.append(number(cell.get("paper"), metric) if cell else "")
        lines.append(line)
    return pd.DataFrame(lines, columns=columns)


def paper_table_markdown(long: pd.DataFrame, datasets=()) -> str:
    """The wide table of `long` as GitHub markdown, with its legend below."""
    frame = wide_frame(long, datasets)
    out = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    out += ["| " + " | ".join(line) + " |" for line in frame.itertuples(index=False)]
    return "\n".join(out) + "\n\n" + LEGEND + "\n"


def write_paper_table(long: pd.DataFrame, stem: str, title: str, note: str) -> None:
    """<stem>.csv: the long form; <stem>.md: the title, the note and the paper's layout."""
    long.to_csv(stem + ".csv", index=False, float_format="%.6g")
    with open(stem + ".md", "w") as f:
        f.write(f"# {title}\n\n{note}\n\n" + paper_table_markdown(long))


def rerender(stem: str, title: str, note: str = "") -> None:
    """<stem>.md again from <stem>.csv (a finished study's table, in the paper's layout)."""
    long = pd.read_csv(stem + ".csv", dtype={"seeds": str, "votes": str, "vs_floor": str})
    long = long.astype(object).where(long.notna(), None)
    with open(stem + ".md", "w") as f:
        f.write(f"# {title}\n\n" + (f"{note}\n\n" if note else "") +
                paper_table_markdown(long))
