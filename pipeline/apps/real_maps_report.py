"""Scoring models on real label maps, the report of `python -m stages.real_maps` (issue 31):
every row and floor on the eligible boxes of a set of frames, paired comparisons resampled by
sequence and by box, per class, the blocky share, and the markdown table."""
from __future__ import annotations

import numpy as np

from pipeline.apps.real_maps import (blocky_share, box_scores, class_mean_masks,
                                     cluster_difference, compare, edited_maps, eligible_boxes,
                                     floor_maps, per_class)
from pipeline.data.sets import STREET_DATASET, get_spec

FLOOR_ROWS = ("fill-box", "mean-mask")

def score_set(frames, train, editors: dict, threshold: float, rule: str, figures: str | None,
              progress: bool, versus=()) -> dict:
    """Every row and floor on the eligible boxes of `frames`: scores, comparisons to both floors
    and to the model rows named in `versus`, classes."""
    boxes = eligible_boxes(frames, threshold, rule)
    if not boxes:
        return {"frames": len(frames.names), "boxes": 0}
    maps = floor_maps(frames, boxes, class_mean_masks(train, threshold, rule))
    for name, editor in editors.items():
        maps[name] = edited_maps(editor, frames, boxes, progress)
    scores = {row: box_scores(frames, boxes, predicted) for row, predicted in maps.items()}
    clusters = [b.sequence for b in boxes]
    zeros = np.zeros(len(boxes))
    result = {"frames": len(frames.names), "boxes": len(boxes),
              "sequences": sorted(set(clusters)), "rows": {}}
    against = {base: compare(scores, boxes, base) for base in (*FLOOR_ROWS, *versus)}
    for row, values in scores.items():
        entry = {"tiou": _estimate(cluster_difference(values, zeros, clusters)),
                 "blocky_share": blocky_share(boxes, maps[row])}
        for base in against:
            if row != base:
                entry[f"minus_{base}"] = {k: _estimate(v) if v is not None else None
                                          for k, v in against[base][row].items()}
        result["rows"][row] = entry
    result["per_class"] = [{"class": name, "boxes": count, "tiou": means}
                           for name, count, means in per_class(scores, boxes,
                                                               get_spec(STREET_DATASET).label_names)]
    if figures:
        from pipeline.apps.real_maps_figures import grid
        grid(frames, boxes, maps, figures)
    return result


def _estimate(estimate) -> dict:
    return {"mean": round(estimate.mean, 4), "low": round(estimate.low, 4),
            "high": round(estimate.high, 4)}


def cell(entry: dict | None) -> str:
    if entry is None:
        return "—"
    return f"{entry['mean']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"


def _versus_cells(entry: dict | None) -> str:
    if entry is None:
        return "— | — | "
    return f"{cell(entry['by_sequence'])} | {cell(entry['by_box'])} | "


def markdown(results: dict, setup: dict) -> str:
    lines = ["## Real maps: trained rows on real Cityscapes label maps", "",
             f"Frames: {setup['raw']} held-out sequences {', '.join(setup['val_sequences'])}"
             f" (training frames: the other sequences); box rule {setup['rule']}, threshold "
             f"{setup['threshold']}, 256x128, every eligible box. tIOU inside the box. "
             "Intervals: 95 %, resampling whole sequences and the boxes within them (by box: "
             "boxes only, which understates the uncertainty of near-duplicate frames). "
             "Blocky: the object mask is constant on every 4x4 tile of the box.", ""]
    for set_name, result in results.items():
        lines += [f"### {set_name}: {result['boxes']} boxes of {result['frames']} frames", ""]
        if not result["boxes"]:
            lines += ["No eligible box.", ""]
            continue
        versus = setup.get("versus", [])
        lines += ["| row | tIOU | − fill-box (by sequence) | − fill-box (by box) | "
                  "− mean-mask (by sequence) | "
                  + "".join(f"− {name} (by sequence) | − {name} (by box) | " for name in versus)
                  + "blocky |", "|---|---|---|---|---|" + "---|---|" * len(versus) + "---|"]
        for row, entry in result["rows"].items():
            tiou = entry["tiou"]
            fill = entry.get("minus_fill-box")
            mean = entry.get("minus_mean-mask")
            lines.append(
                f"| {row} | {tiou['mean']:.3f} [{tiou['low']:.3f}, {tiou['high']:.3f}] | "
                f"{cell(fill['by_sequence']) if fill else '—'} | "
                f"{cell(fill['by_box']) if fill else '—'} | "
                f"{cell(mean['by_sequence']) if mean else '—'} | "
                + "".join(_versus_cells(entry.get(f"minus_{name}")) for name in versus)
                + f"{entry['blocky_share'] * 100:.0f} % |")
        rows = list(result["rows"])
        lines += ["", "Per class (mean tIOU):", "",
                  "| class | boxes | " + " | ".join(rows) + " |",
                  "|---|---|" + "---|" * len(rows)]
        for entry in result["per_class"]:
            lines.append(f"| {entry['class']} | {entry['boxes']} | "
                         + " | ".join(f"{entry['tiou'][r]:.3f}" for r in rows) + " |")
        lines.append("")
    return "\n".join(lines)
