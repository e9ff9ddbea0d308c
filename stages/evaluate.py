"""Evaluate every row of one table (every seed) and its floor rows on the seed-679 test items.

  python -m stages.evaluate    Tables 1-2 (structure and TwoSM rows) on the test boxes:
                               reports/metrics.json (means; deterministic on CPU),
                               reports/scores.csv (one line per row, seed and test box),
                               reports/run_conditions.json (incl. the platform),
                               reports/resources.json (not a DVC output: the machine, and
                               each run's training time and memory, which vary),
                               artifacts/eval/<row>.npz (examples for the figures),
                               artifacts/eval/results/<row>.npz (every test box's result
                               map, first seed: the HuEv study items)
  python -m stages.evaluate --table inpainting
                               Table 3 (GL rows) on the holes of the facade test photos:
                               reports/inpainting_metrics.json, inpainting_scores.csv,
                               inpainting_run_conditions.json, artifacts/inpainting/eval/
"""
import os

import pandas as pd

from pipeline.atomic import atomic_open, write_json_atomic
from pipeline.config.loading import load_params
from stages.common import ArgumentParser, run

# table -> (reports/ file prefix, examples folder)
OUTPUTS = {"segmentation": ("", "artifacts/eval"),
           "inpainting": ("inpainting_", "artifacts/inpainting/eval")}


def write_json(path, data):
    write_json_atomic(path, data, sort_keys=True)


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--table", choices=sorted(OUTPUTS), default="segmentation",
                        help="segmentation: Tables 1-2 (default); inpainting: Table 3")
    parser.add_argument("--rows", nargs="*", help="rows to evaluate (default: all of the table)")
    args = parser.parse_args()
    params = load_params(args.params)
    from pipeline.evaluation.evaluation import collect_resources
    from pipeline.kinds import evaluate_table, table_rows
    from pipeline.training.platform import describe
    prefix, samples_dir = OUTPUTS[args.table]
    rows = table_rows(params, args.table) if args.rows is None else args.rows
    result = evaluate_table(params, args.table, rows, samples_dir=samples_dir)
    os.makedirs("reports", exist_ok=True)
    conditions = result["conditions"]
    if args.table == "segmentation":
        # What differs from machine to machine (CPU model, flags, cores) goes with time and
        # memory into reports/resources.json, which DVC does not track: run_conditions.json
        # (a DVC output) stays the same on every CPU in portable mode.
        platform = describe()
        machine = platform.pop("machine")
        conditions = {**conditions, "platform": platform}
        write_json("reports/resources.json", {"machine": machine,
                                              "runs": collect_resources(params, rows)})
    write_json(f"reports/{prefix}run_conditions.json", conditions)
    write_json(f"reports/{prefix}metrics.json", result["rows"])
    scores = pd.DataFrame(result["scores"], columns=result["columns"])
    with atomic_open(f"reports/{prefix}scores.csv", "w", newline="") as f:
        scores.to_csv(f, index=False, float_format="%.17g")
    print(f"evaluated {len(rows)} {args.table} rows -> reports/{prefix}metrics.json "
          f"({conditions['fid_metric']})")


if __name__ == "__main__":
    run(main)
