"""Train the completion network of one Table 3 row (params.yaml inpainting_rows): GL or GL+A-MEx.

  (GL+A-MEx rows under either reading, inpainting_rows.<row>.amex_reading: ours | authors)

  python -m stages.train_inpainting gl-amex-facade --seed 0
      -> artifacts/inpainting/models/<row>/seed<k>/ (generator.pt, train_summary.json,
         checkpoints), reports/train/<row>/seed<k>/ (dvclive: losses, phase, eval/ssim, eval/l1;
         resources.json)
"""
import json
import sys

from pipeline.config import load_params, seed_dir, to_dict
from pipeline.rows import train_inpainting_row
from stages.common import ArgumentParser, relaunch_under_torchrun, run

DATA = "artifacts/inpainting/data"      # prepare_inpainting (outside artifacts/data: the
MODELS = "artifacts/inpainting/models"  # segmentation stages depend on that whole folder)


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", help="row name, e.g. gl-facade")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed, one of params `seeds` (default: the first)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved row and exit")
    args = parser.parse_args()
    params = load_params(args.params)
    relaunch_under_torchrun(params.train.processes, "stages.train_inpainting", sys.argv[1:])
    row = params.inpainting_row(args.row)
    seed = params.seeds[0] if args.seed is None else args.seed
    if seed not in params.seeds:
        raise ValueError(f"--seed {seed} is not one of params seeds {list(params.seeds)}")
    if args.dry_run:
        print(json.dumps({"row": args.row, **to_dict(row), "seed": seed,
                          "inpainting": to_dict(params.inpainting)}, indent=2))
        return
    summary = train_inpainting_row(params, args.row, DATA,
                                   seed_dir(MODELS, args.row, seed),
                                   seed_dir("reports/train", args.row, seed), seed=seed)
    print(f"{args.row} seed {seed}: {summary['steps']} steps in {summary['train_seconds']:.1f} s")


if __name__ == "__main__":
    run(main)
