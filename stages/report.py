"""Render the paper's tables, the q-sensitivity plot and the picture grids into reports/.

  python -m stages.report
"""
import argparse
import json
import os

import numpy as np

from pipeline.config import load_params
from pipeline.datasets import get_spec
from pipeline.reports import (PAPER_TABLE1, PAPER_TABLE4, comparison_table, plot_q_sensitivity,
                              q_sensitivity, qualitative_grid, write_table)
from stages.common import run


def read_json(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (run the evaluate stage)")
    with open(path) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    metrics = read_json("reports/metrics.json")
    for row, values in read_json("reports/resources.json").items():
        metrics.setdefault(row, {}).update(values)
    conditions = read_json("reports/run_conditions.json")
    sizes = ", ".join(f"{name} {d.width}x{d.height}" for name, d in params.datasets.items())
    note = (f"Ours: data {conditions['data_source']}, {sizes}, {params.train.epochs} epochs, "
            f"ngf {params.model.ngf}, device {conditions['device']}; FID: "
            f"{conditions['fid_source']}; VGG19: {'; '.join(conditions['vgg_sources'])}. "
            "Paper: real data at full size, 200 epochs, GPU. Differences are only shown where "
            "the metric is the same quantity.")
    write_table(comparison_table(metrics, PAPER_TABLE1, ["tiou", "hamm", "fid"]),
                "reports/table1", "Table 1 — Pix2PixHD vs MExGAN", note)
    write_table(comparison_table(metrics, PAPER_TABLE4, ["tiou", "hamm", "mem_gpu_avg_gb"]),
                "reports/table4", "Table 4 — MExGAN vs A-MExGAN", note)
    sweep = q_sensitivity(metrics)
    sweep.to_csv("reports/q_sensitivity.csv", index=False, float_format="%.6g")
    if len(sweep):
        plot_q_sensitivity(sweep, "reports/q_sensitivity.png",
                           f"{conditions['data_source']} Cityscapes, alpha=beta={params.alpha}")
    os.makedirs("reports/figures", exist_ok=True)
    for dataset in params.datasets:
        shown = {}
        for title, prefix in (("Pix2PixHD", "pix2pixhd"), ("MExGAN", "mexgan")):
            path = f"artifacts/eval/{prefix}-{dataset}.npz"
            if os.path.exists(path):
                shown[title] = dict(np.load(path))
        if shown:
            qualitative_grid(shown, get_spec(dataset).label_names,
                             f"reports/figures/grid_{dataset}.png")
    print("reports: table1, table4, q_sensitivity, figures/grid_*.png")


if __name__ == "__main__":
    run(main)
