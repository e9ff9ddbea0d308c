"""Train the downstream translator G_I (colour map -> photo) of one dataset.

  python -m stages.train_translator cityscapes
      -> artifacts/models/translator-<dataset>/, reports/train/translator-<dataset>/
"""
import sys

from pipeline.config.loading import load_params
from stages.common import ArgumentParser, relaunch_under_torchrun, run


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    relaunch_under_torchrun(params.train.processes, "stages.train_translator", sys.argv[1:])
    if args.dataset not in params.datasets:
        raise ValueError(f"datasets.{args.dataset}: not in {args.params}")
    from pipeline.kinds import TRANSLATOR, translator_name
    summary = TRANSLATOR.train(params, args.dataset)
    print(f"{translator_name(args.dataset)}: {summary['steps']} steps in "
          f"{summary['train_seconds']:.1f} s")


if __name__ == "__main__":
    run(main)
