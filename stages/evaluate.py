"""Evaluate every row of params.yaml on the seed-679 test boxes.

  python -m stages.evaluate    -> reports/metrics.json (deterministic on CPU),
                                  reports/resources.json (time, memory), run_conditions.json,
                                  artifacts/eval/<row>.npz (examples for the figures)
"""
import json
import os

from pipeline.config import load_params
from pipeline.evaluation import evaluate
from stages.common import ArgumentParser, run


def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


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
    write_json("reports/run_conditions.json", result["conditions"])
    write_json("reports/metrics.json", result["rows"])
    write_json("reports/resources.json", result["resources"])
    print(f"evaluated {len(rows)} rows -> reports/metrics.json "
          f"({result['conditions']['fid_metric']})")


if __name__ == "__main__":
    run(main)
