"""Evaluate every row of params.yaml (every seed) and the floor rows on the seed-679 test boxes.

  python -m stages.evaluate    -> reports/metrics.json (means; deterministic on CPU),
                                  reports/scores.csv (one line per row, seed and test box),
                                  reports/run_conditions.json (incl. the platform),
                                  reports/resources.json (not a DVC output: the machine, and
                                  each run's training time and memory, which vary),
                                  artifacts/eval/<row>.npz (examples for the figures),
                                  artifacts/eval/results/<row>.npz (every test box's result
                                  map, first seed: the HuEv study items)
"""
import os

import pandas as pd

from pipeline.atomic import atomic_open, write_json_atomic
from pipeline.config import load_params
from pipeline.evaluation import SCORE_COLUMNS, collect_resources, evaluate
from pipeline.platform import describe
from stages.common import ArgumentParser, run


def write_json(path, data):
    write_json_atomic(path, data, sort_keys=True)


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rows", nargs="*", help="rows to evaluate (default: all)")
    args = parser.parse_args()
    params = load_params(args.params)
    rows = args.rows or list(params.rows)
    for name in rows:
        params.row(name)  # unknown names fail before any work
    result = evaluate(params, rows, data_root="artifacts/data", model_root="artifacts/models",
                      samples_dir="artifacts/eval")
    os.makedirs("reports", exist_ok=True)
    platform = describe()
    # What differs from machine to machine (CPU model, flags, cores) goes with time and memory
    # into reports/resources.json, which DVC does not track: run_conditions.json (a DVC output)
    # stays the same on every CPU in portable mode.
    machine = platform.pop("machine")
    write_json("reports/run_conditions.json", {**result["conditions"], "platform": platform})
    write_json("reports/metrics.json", result["rows"])
    write_json("reports/resources.json", {"machine": machine,
                                          "runs": collect_resources(params, rows)})
    scores = pd.DataFrame(result["scores"], columns=SCORE_COLUMNS)
    with atomic_open("reports/scores.csv", "w", newline="") as f:
        scores.to_csv(f, index=False, float_format="%.17g")
    print(f"evaluated {len(rows)} rows -> reports/metrics.json "
          f"({result['conditions']['fid_metric']})")


if __name__ == "__main__":
    run(main)
