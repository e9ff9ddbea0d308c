"""HuEv's result (pipeline.apps.huev is the study, pipeline.apps.huev_votes its votes): votes
(exported as CSV, the DVC stage's input) -> preference share per row with a 95 % binomial
(Clopper-Pearson) interval and the vote count; a vote counts for the pair of rows stored with
it. What the huev stage writes (reports/huev.json, reports/huev.md) and the HuEv line of Table 1."""
from __future__ import annotations

import numpy as np

from pipeline.apps.huev import QUESTION


def of_pair(votes, rows) -> list:
    """The votes cast on the pair `rows` (either order): a vote counts for the rows stored with
    it, so votes cast while huev.rows named another pair stay out of this pair's numbers."""
    pair = set(rows)
    return [v for v in votes if {v["a_row"], v["b_row"]} == pair]


def other_pairs(votes, rows) -> dict:
    """Votes on pairs other than `rows`: "row1 vs row2" (sorted) -> count."""
    counts = {}
    for v in votes:
        if {v["a_row"], v["b_row"]} != set(rows):
            key = " vs ".join(sorted((v["a_row"], v["b_row"])))
            counts[key] = counts.get(key, 0) + 1
    return counts


def preference(votes, rows, confidence: float = 0.95) -> list:
    """HuEv per row of the pair: the share of votes that chose it, its Clopper-Pearson
    interval, the vote count, the number of participants and the paper's variant (each
    participant's share, averaged over participants), over the votes cast on this pair
    (of_pair; votes on other pairs are left out). With no votes every number is None.
    Votes are treated as independent trials (they are not quite: one participant answers many
    items); the participant-averaged share is given beside for that reason."""
    from scipy.stats import binomtest
    rows = list(rows)
    votes = of_pair(votes, rows)
    total = len(votes)
    participants = sorted({v["participant"] for v in votes})
    lines = []
    for row in rows:
        chosen = sum(v["chosen_row"] == row for v in votes)
        line = {"row": row, "votes_for": chosen, "votes": total,
                "participants": len(participants), "share": None, "ci_low": None,
                "ci_high": None, "share_mean_of_participants": None}
        if total:
            ci = binomtest(chosen, total).proportion_ci(confidence, method="exact")
            per_participant = []
            for p in participants:
                mine = [v for v in votes if v["participant"] == p]
                per_participant.append(sum(v["chosen_row"] == row for v in mine) / len(mine))
            line.update(share=chosen / total, ci_low=float(ci.low), ci_high=float(ci.high),
                        share_mean_of_participants=float(np.mean(per_participant)))
        lines.append(line)
    return lines


PAPER_HUEV = {"pix2pixhd-cityscapes": 0.4704, "mexgan-cityscapes": 0.5296}  # Table 1, 11 users
NO_VOTES = "no votes yet"


def summary(votes, rows) -> dict:
    """What the huev stage writes (reports/huev.json): the pair, the vote, participant and item
    counts and preference() per row, over the votes on this pair; other_pairs counts the votes
    on other pairs (cast while huev.rows named them), which are not in these numbers."""
    lines = preference(votes, rows)
    mine = of_pair(votes, rows)
    return {"rows": list(rows), "votes": len(mine),
            "participants": len({v["participant"] for v in mine}),
            "items": len({v["item"] for v in mine}), "question": QUESTION,
            "interval": "95 % Clopper-Pearson (exact binomial), votes as independent trials",
            "other_pairs": other_pairs(votes, rows),
            "preference": {line["row"]: {k: v for k, v in line.items() if k != "row"}
                           for line in lines}}


def table1_with_huev(frame, huev: dict, paper: dict = PAPER_HUEV):
    """Table 1 (pipeline.evaluation.reports.comparison_table's frame) with a `huev` line after each study
    row's last line and a `votes` column (votes for the row / all votes). Without votes the
    line has no number (ours is missing) and its votes cell says NO_VOTES."""
    import pandas as pd
    from pipeline.evaluation.floors import is_floor_row  # scipy, skimage: not at the web app's start
    records = frame.to_dict("records")
    for record in records:
        record["votes"] = None
    for row in huev["rows"]:
        values = huev["preference"][row]
        share = values["share"]
        line = {"row": row, "metric": "huev", "paper": paper.get(row),
                "ours": share,
                "ci_low": values["ci_low"], "ci_high": values["ci_high"], "seeds": None,
                "vs_floor": "", "difference": None if share is None or row not in paper
                else share - paper[row],
                "votes": NO_VOTES if share is None
                else f"{values['votes_for']} / {values['votes']}"}
        at = max((i for i, r in enumerate(records) if r["row"] == row), default=None)
        if at is None:
            at = max((i for i, r in enumerate(records) if not is_floor_row(r["row"])),
                     default=len(records) - 1)
        records.insert(at + 1, line)
    return pd.DataFrame(records, columns=list(frame.columns) + ["votes"])


def markdown(huev: dict, paper: dict = PAPER_HUEV) -> str:
    """reports/huev.md: the study's result, or a line saying it has no votes."""
    rows = huev["rows"]
    out = ["# HuEv — human evaluation (Table 1)", "",
           f"Two-alternative forced choice between `{rows[0]}` and `{rows[1]}` on the seed-679 "
           f"test boxes (A / B in random order per item and participant). Question: "
           f"\"{huev['question']}\"", ""]
    others = ", ".join(f"{n} votes on {pair}" for pair, n in huev.get("other_pairs", {}).items())
    left_out = [f"Not counted: {others} (cast while params huev.rows named that pair; set "
                "huev.rows to it for their result).", ""] if others else []
    if not huev["votes"]:
        out += [f"**{NO_VOTES}**: the study has not been run. `python -m stages.serve` serves "
                "it; `python -m stages.serve --export` writes the votes to the file this stage "
                "reads (params huev.votes).", ""]
        return "\n".join(out + left_out)
    out += [f"{huev['votes']} votes from {huev['participants']} participants on "
            f"{huev['items']} items. share: votes for the row / all votes, with a "
            f"{huev['interval']} interval; mean of participants: each participant's share, "
            "averaged (the paper's \"averaging across observers\").", "",
            "| row | paper | share | ci_low | ci_high | votes for | votes | mean of participants |",
            "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        v = huev["preference"][row]
        paper_value = f"{paper[row]:.4f}" if row in paper else "—"
        out.append(f"| {row} | {paper_value} | {v['share']:.4f} | {v['ci_low']:.4f} | "
                   f"{v['ci_high']:.4f} | {v['votes_for']} | {v['votes']} | "
                   f"{v['share_mean_of_participants']:.4f} |")
    return "\n".join(out + ([""] + left_out[:1] if left_out else [])) + "\n"
