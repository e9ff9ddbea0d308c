"""Summarise the prepared datasets: images per split, eligible boxes per class, skipped images,
and the count of real test images with an eligible box next to the authors' (376 of 500).

  python -m stages.dataset_report cityscapes nyu helen -> reports/datasets.md
"""
import argparse
import json
import os

from pipeline.atomic import write_text_atomic
from pipeline.evaluation.dataset_tables import datasets_markdown
from stages.common import run

REAL_COUNTS = "reports/real_eligible_boxes.json"  # python -m stages.eligible_boxes --out ...
WORLD = "reports/world_statistics.json"            # python -m stages.world_statistics


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", help="default: every dataset of params.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-root", default="artifacts/data")
    parser.add_argument("--out", default="reports/datasets.md")
    parser.add_argument("--world", default=WORLD,
                        help="stages.world_statistics output to show (skipped when absent)")
    parser.add_argument("--real-counts", default=REAL_COUNTS,
                        help="stages.eligible_boxes output to show (skipped when absent)")
    args = parser.parse_args()
    if not args.datasets:
        from pipeline.config.loading import load_params
        args.datasets = list(load_params(args.params).datasets)
    stats = []
    for dataset in args.datasets:
        path = os.path.join(args.data_root, dataset, "stats.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path} does not exist (run the prepare stage)")
        with open(path) as f:
            stats.append(json.load(f))
    optional = {}
    for name, path in (("real_counts", args.real_counts), ("world", args.world)):
        if os.path.exists(path):
            with open(path) as f:
                optional[name] = json.load(f)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_text_atomic(args.out, datasets_markdown(stats, **optional))


if __name__ == "__main__":
    run(main)
