"""Train the structure generator of one table row (params.yaml baselines / mex_rows).

  python -m stages.train mexgan-cityscapes --seed 0
      -> artifacts/models/<row>/seed<k>/ (generator.pt, train_summary.json, checkpoints),
         reports/train/<row>/seed<k>/ (dvclive: losses, eval/tiou, eval/hamm; resources.json)
"""
import json
import sys

from pipeline.config import load_params, to_dict
from pipeline.config import seed_dir
from pipeline.rows import train_row
from stages.common import ArgumentParser, relaunch_under_torchrun, run


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", help="row name, e.g. mexgan-cityscapes")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed, one of params `seeds` (default: the first)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved row and exit")
    args = parser.parse_args()
    params = load_params(args.params)
    relaunch_under_torchrun(params.train.processes, "stages.train", sys.argv[1:])
    row = params.row(args.row)
    seed = params.seeds[0] if args.seed is None else args.seed
    if seed not in params.seeds:
        raise ValueError(f"--seed {seed} is not one of params seeds {list(params.seeds)}")
    if args.dry_run:
        q = params.row_q(args.row) if row.loss != "pix2pixhd" else None
        print(json.dumps({"row": args.row, **to_dict(row), "q": q, "seed": seed, "model": to_dict(params.model),
                          "loss": to_dict(params.loss), "train": to_dict(params.train)}, indent=2))
        return
    summary = train_row(params, args.row, f"artifacts/data/{row.dataset}",
                        seed_dir("artifacts/models", args.row, seed),
                        seed_dir("reports/train", args.row, seed), seed=seed)
    print(f"{args.row} seed {seed}: {summary['steps']} steps in {summary['train_seconds']:.1f} s")


if __name__ == "__main__":
    run(main)
