"""Summarise the prepared datasets: images per split, eligible boxes per class, skipped images.

  python -m stages.dataset_report cityscapes nyu helen -> reports/datasets.md
"""
import argparse
import json
import os

from stages.common import run


def section(stats: dict) -> list:
    lines = [f"## {stats['dataset']} ({stats['source']}, {stats['width']}x{stats['height']}, "
             f"box threshold {stats['size_threshold']})", "",
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
    lines += ["", f"Test boxes (seed {stats['test_box_seed']}): {stats['test']['test_boxes']}; "
              f"test images skipped (no eligible box): {len(skipped)}"
              + (f" ({', '.join(skipped[:10])}{', ...' if len(skipped) > 10 else ''})"
                 if skipped else ""), ""]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", help="default: every dataset of params.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-root", default="artifacts/data")
    parser.add_argument("--out", default="reports/datasets.md")
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
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    run(main)
