"""Train the structure generator of one table row (params.yaml baselines / mex_rows).

  python -m stages.train mexgan-cityscapes
"""
import json
import sys

from pipeline.config import load_params, to_dict
from pipeline.rows import train_row
from stages.common import ArgumentParser, relaunch_under_torchrun, run


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", help="row name, e.g. mexgan-cityscapes")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved row and exit")
    args = parser.parse_args()
    params = load_params(args.params)
    relaunch_under_torchrun(params.train.processes, "stages.train", sys.argv[1:])
    row = params.row(args.row)
    if args.dry_run:
        q = params.row_q(args.row) if row.loss != "pix2pixhd" else None
        print(json.dumps({"row": args.row, **to_dict(row), "q": q, "model": to_dict(params.model),
                          "loss": to_dict(params.loss), "train": to_dict(params.train)}, indent=2))
        return
    summary = train_row(params, args.row, f"artifacts/data/{row.dataset}",
                        f"artifacts/models/{args.row}", f"reports/train/{args.row}")
    print(f"{args.row}: {summary['steps']} steps in {summary['train_seconds']:.1f} s")


if __name__ == "__main__":
    run(main)
