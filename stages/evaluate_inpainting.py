"""Evaluate every inpainting row of params.yaml (every seed) and the inpainting floors on the
seed-679 holes of the facade test photos (Table 3).

  python -m stages.evaluate_inpainting
      -> reports/inpainting_metrics.json (means; deterministic on CPU),
         reports/inpainting_scores.csv (one line per row, seed, test image and hole),
         reports/inpainting_run_conditions.json, artifacts/inpainting/eval/<row>.npz (examples)
"""
import os

import pandas as pd

from pipeline.atomic import atomic_open, write_json_atomic
from pipeline.config import load_params
from pipeline.evaluation import INPAINTING_SCORE_COLUMNS, evaluate_inpainting
from stages.common import ArgumentParser, run
from stages.train_inpainting import DATA, MODELS


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rows", nargs="*", help="rows to evaluate (default: all)")
    args = parser.parse_args()
    params = load_params(args.params)
    rows = list(params.inpainting_rows) if args.rows is None else args.rows
    for name in rows:
        params.inpainting_row(name)  # unknown names fail before any work
    result = evaluate_inpainting(params, rows,
                                 data_dir=DATA,
                                 model_root=MODELS, samples_dir="artifacts/inpainting/eval")
    os.makedirs("reports", exist_ok=True)
    write_json_atomic("reports/inpainting_run_conditions.json", result["conditions"],
                      sort_keys=True)
    write_json_atomic("reports/inpainting_metrics.json", result["rows"], sort_keys=True)
    scores = pd.DataFrame(result["scores"], columns=INPAINTING_SCORE_COLUMNS)
    with atomic_open("reports/inpainting_scores.csv", "w", newline="") as f:
        scores.to_csv(f, index=False, float_format="%.17g")
    print(f"evaluated {len(rows)} inpainting rows -> reports/inpainting_metrics.json "
          f"({result['conditions']['fid_metric']})")


if __name__ == "__main__":
    run(main)
