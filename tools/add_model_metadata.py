"""Give a generator.pt of the older layout (written before model files carried metadata) the
metadata `stages.edit` and `load_generator` need, once, without retraining:

  python -m tools.add_model_metadata OLD/generator.pt --row mexgan-cityscapes \\
      --dataset cityscapes --data artifacts/data/cityscapes --out NEW/generator.pt

The size comes from the prepared data the model was trained on (--data: its train.h5) or
--size WxH. The weights are copied unchanged; the params hash and commit are recorded as
"unknown (converted)", since the old file does not say. Retraining (`dvc repro`) is the
alternative that records them. Errors: one line, exit status 1; nothing written.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def convert(old: str, new: str, *, row: str, dataset: str, width: int, height: int) -> dict:
    from pipeline.training.checkpoints import load_model_file, save_atomic
    from pipeline.data.sets import get_spec
    from pipeline.models.model_files import MODEL_FORMAT, model_metadata
    state = load_model_file(old, ("generator", "in_channels"))
    if isinstance(state.get("meta"), dict) and state["meta"].get("format") == MODEL_FORMAT:
        raise ValueError(f"{old}: has metadata already (row {state['meta']['row']})")
    spec = get_spec(dataset)
    kind = ("inpainting" if state.get("gl") else "twosm" if state.get("twosm")
            else "translator" if state["in_channels"] == 3 else "structure")
    expected = {"structure": spec.num_labels + 2, "twosm": spec.num_labels + 2,
                "translator": 3, "inpainting": 4}[kind]
    if state["in_channels"] != expected:
        raise ValueError(f"{old}: {state['in_channels']} input channels, a {kind} model of "
                         f"{dataset} has {expected} (wrong --dataset?)")
    state["meta"] = model_metadata(kind, dataset, width, height, row, state["in_channels"],
                                   "unknown (converted)", "unknown (converted)")
    if os.path.abspath(new) == os.path.abspath(old):
        raise ValueError("--out must differ from the old file (keep the original)")
    os.makedirs(os.path.dirname(os.path.abspath(new)), exist_ok=True)
    save_atomic(state, new)
    return state["meta"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="generator.pt of the older layout")
    parser.add_argument("--row", required=True, help="row name (or translator-<dataset>)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data", help="prepared dataset folder the model was trained on")
    parser.add_argument("--size", help="WxH the model was trained at (instead of --data)")
    parser.add_argument("--out", required=True, help="new model file")
    args = parser.parse_args(argv)
    try:
        if args.size:
            width, height = (int(v) for v in args.size.lower().split("x"))
        elif args.data:
            from pipeline.data.datasets import read_split
            labels = read_split(os.path.join(args.data, "train.h5")).labels
            height, width = labels.shape[1:]
        else:
            raise ValueError("give --data (prepared dataset folder) or --size WxH")
        meta = convert(args.old, args.out, row=args.row, dataset=args.dataset, width=width,
                       height=height)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    print(f"{args.out}: {meta['kind']} model of {meta['dataset']} at "
          f"{meta['width']}x{meta['height']} (row {meta['row']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
