"""Summarise the prepared datasets: images per split, eligible boxes per class, skipped images,
and the count of real test images with an eligible box next to the authors' (376 of 500).

  python -m stages.dataset_report cityscapes nyu helen -> reports/datasets.md
"""
import argparse
import json
import os

from pipeline.atomic import write_text_atomic
from pipeline.datasets import AUTHORS_TEST_BOXES
from stages.common import run

REAL_COUNTS = "reports/real_eligible_boxes.json"  # python -m stages.eligible_boxes --out ...


def section(stats: dict) -> list:
    lines = [f"## {stats['dataset']} ({stats['source']}, {stats['width']}x{stats['height']}, "
             f"box threshold {stats['size_threshold']}, box rule {stats['box_rule']})", "",
             "| split | images | without an eligible box | eligible boxes |", "|---|---|---|---|"]
    for split in ("train", "test"):
        s = stats[split]
        lines.append(f"| {split} | {s['images']} | {s['images_without_eligible_box']} | "
                     f"{sum(s['eligible_boxes_per_class'].values())} |")
    classes = sorted(set(stats["train"]["eligible_boxes_per_class"])
                     | set(stats["test"]["eligible_boxes_per_class"]))
    lines += ["", "| class | train boxes | test boxes |", "|---|---|---|"]
    for name in classes:
        lines.append(f"| {name} | {stats['train']['eligible_boxes_per_class'].get(name, 0)} | "
                     f"{stats['test']['eligible_boxes_per_class'].get(name, 0)} |")
    skipped = stats["test"].get("skipped_images", [])
    lines += ["", f"Test boxes (seed {stats['test_box_seed']}): {stats['test']['test_boxes']} of "
              f"{stats['test']['images']} test images have an eligible box; skipped: "
              f"{len(skipped)}"
              + (f" ({', '.join(skipped[:10])}{', ...' if len(skipped) > 10 else ''})"
                 if skipped else "")]
    authors = AUTHORS_TEST_BOXES.get(stats["dataset"])
    if authors and stats["source"] == "real":
        lines.append(f"The authors' code: {authors['test_boxes']} of {authors['test_images']} "
                     f"({authors['size']}).")
    return lines + [""]


def real_counts_section(counts: dict) -> list:
    """The eligible-image counts of stages.eligible_boxes on real instance maps."""
    authors = counts["authors"]
    lines = [f"## Real {counts['dataset']}: test images with an eligible box", "",
             f"{counts['images_from']}: {counts['images']} images at {counts['size']}, "
             f"threshold {counts['size_threshold']}.", "",
             "| box rule | images with an eligible box | of | seed-679 boxes per class |",
             "|---|---|---|---|"]
    for rule, c in counts["rules"].items():
        classes = ", ".join(f"{k} {v}" for k, v in c["test_boxes_per_class"].items()) or "-"
        lines.append(f"| {rule} | {c['eligible_images']} | {counts['images']} | {classes} |")
    lines += ["", f"The authors' code: {authors['test_boxes']} of {authors['test_images']} val "
              f"images ({authors['size']}). The comparison needs the full val set: "
              "`python -m stages.eligible_boxes --inst-dir data/raw/gtFine/val --label "
              "\"Cityscapes val\" --out reports/real_eligible_boxes.json` (only gtFine is "
              "read), then `dvc repro dataset_report`.", ""]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", help="default: every dataset of params.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-root", default="artifacts/data")
    parser.add_argument("--out", default="reports/datasets.md")
    parser.add_argument("--real-counts", default=REAL_COUNTS,
                        help="stages.eligible_boxes output to show (skipped when absent)")
    args = parser.parse_args()
    lines = ["# Prepared datasets", ""]
    if not args.datasets:
        from pipeline.config import load_params
        args.datasets = list(load_params(args.params).datasets)
    for dataset in args.datasets:
        path = os.path.join(args.data_root, dataset, "stats.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist (run the prepare stage)")
        with open(path) as f:
            lines += section(json.load(f))
    if os.path.exists(args.real_counts):
        with open(args.real_counts) as f:
            lines += real_counts_section(json.load(f))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_text_atomic(args.out, "\n".join(lines))


if __name__ == "__main__":
    run(main)
