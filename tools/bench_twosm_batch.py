"""TwoSM's training throughput at batch 1 and batch 8, side by side in one run (issue 34):
the Table 2 study's params (params_study_twosm.yaml: the hong build at 64x32, one thread), each
TwoSM row timed at twosm.batch_size 1 and 8 in fresh processes taking turns (pipeline.apps.benchmark's
run_interleaved), samples/s = batch / median step seconds. Writes a JSON record.

  python tools/bench_twosm_batch.py [--params params_study_twosm.yaml] [--steps 12]
      [--rounds 2] [--rows twosm-cityscapes twosm-full-cityscapes]
      [--out reports/bench_twosm_batch.json]
"""
import argparse
import dataclasses
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from pipeline.apps.benchmark import _benchmark_row  # noqa: E402
from pipeline.apps.step_timing import WARMUP, run_interleaved  # noqa: E402
from pipeline.config.loading import load_params  # noqa: E402

BATCHES = (1, 8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params_study_twosm.yaml")
    parser.add_argument("--steps", type=int, default=12, help="steps per timing, the first "
                        f"{WARMUP} left out")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=24, help="synthetic training maps")
    parser.add_argument("--rows", nargs="+", default=["twosm-cityscapes",
                                                      "twosm-full-cityscapes"])
    parser.add_argument("--out", default="reports/bench_twosm_batch.json")
    args = parser.parse_args()
    params = load_params(args.params)
    dataset = params.twosm_rows[args.rows[0]].dataset
    size = params.datasets[dataset]
    jobs = {}
    for row in args.rows:
        for batch in BATCHES:
            batched = dataclasses.replace(params, twosm=dataclasses.replace(
                params.twosm, batch_size=batch))
            jobs[f"{row}@batch{batch}"] = (_benchmark_row, (
                batched, dataset, row, size.width, size.height, args.steps, args.images))
    measured = run_interleaved(jobs, args.rounds, "twosm batch")
    rows = {}
    for row in args.rows:
        rows[row] = {}
        for batch in BATCHES:
            result = measured[f"{row}@batch{batch}"]
            rows[row][f"batch{batch}"] = {
                "median_step_seconds": result["median_step_seconds"],
                "best_step_seconds": result["best_step_seconds"],
                "samples_per_second": batch / result["median_step_seconds"],
                "mem_cpu_step_peak_rss_max_gb": result.get("mem_cpu_step_peak_rss_max_gb")}
        rows[row]["samples_per_second_batch8_over_batch1"] = (
            rows[row]["batch8"]["samples_per_second"] / rows[row]["batch1"]["samples_per_second"])
    record = {"what": "TwoSM training samples/s at twosm.batch_size 1 vs 8 (issue 34)",
              "params": args.params, "build": params.twosm.build, "dataset": dataset,
              "size": f"{size.width}x{size.height}", "crop_size": params.twosm.crop_size,
              "cpu_threads": params.train.cpu_threads, "steps": args.steps,
              "warmup_steps": WARMUP, "rounds": args.rounds, "device": "cpu",
              "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
              "note": "one thread per run, on a machine whose other core(s) may be busy: "
                      "compare the two batches of one row, not absolute times",
              "rows": rows}
    with open(args.out, "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
