"""Train one table row (any kind: params.yaml baselines / mex_rows / twosm_rows /
inpainting_rows) with one training seed.

  python -m stages.train mexgan-cityscapes --seed 0
      -> artifacts/models/<row>/seed<k>/ (generator.pt, train_summary.json, checkpoints),
         reports/train/<row>/seed<k>/ (dvclive: losses, eval/tiou, eval/hamm; resources.json)
  python -m stages.train gl-amex-facade --seed 0
      -> artifacts/inpainting/models/<row>/seed<k>/, reports/train/<row>/seed<k>/ (dvclive:
         losses, phase, eval/ssim, eval/l1; resources.json)
  python -m stages.train mexgan-cityscapes --dry-run   print the resolved row and exit
"""
import json
import sys

from pipeline.config.loading import load_params, to_dict
from stages.common import ArgumentParser, relaunch_under_torchrun, run


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", help="row name, e.g. mexgan-cityscapes or gl-facade")
    parser.add_argument("--seed", type=int, default=None,
                        help="training seed, one of params `seeds` (default: the first)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved row and exit")
    args = parser.parse_args()
    params = load_params(args.params)
    relaunch_under_torchrun(params.train.processes, "stages.train", sys.argv[1:])
    from pipeline.kinds import kind_of  # after the relaunch: torch is imported once per rank
    kind = kind_of(params, args.row)
    row = kind.rows(params)[args.row]
    seed = params.seeds[0] if args.seed is None else args.seed
    if seed not in params.seeds:
        raise ValueError(f"--seed {seed} is not one of params seeds {list(params.seeds)}")
    if args.dry_run:
        print(json.dumps({"row": args.row, "kind": kind.name, **to_dict(row), "seed": seed,
                          **kind.training_settings(params, row)}, indent=2))
        return
    summary = kind.train(params, args.row, seed)
    print(f"{args.row} seed {seed}: {summary['steps']} steps in {summary['train_seconds']:.1f} s")


if __name__ == "__main__":
    run(main)
