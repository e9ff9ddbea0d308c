"""Score trained rows on real Cityscapes label maps, as `stages.edit` edits (issue 31).

    python -m stages.real_maps --raw ../shared/data/cityscapes_video \
        --val-sequences aachen_000004 aachen_000005 --gtfine ../shared/data/cityscapes \
        --model twosm-full=artifacts/models/twosm-full-cityscapes/seed0 \
        --model released=models/twosm-full-cityscapes --out reports/real_maps

Every eligible box (tight rule, >= 0.02 of the image) of the held-out frames at 256x128, each
model beside the fill-box and mean-mask floors (mean masks from the other sequences), paired
differences with 95 % intervals resampled by sequence (and by box), per class, the share of
blocky boxes. Writes <out>.json and <out>.md (numbers only) and a picture grid into --figures
(default artifacts/real_maps: pictures of Cityscapes maps stay out of the repository).
With --params, a project whose data.sources says cityscapes is real gives --raw and
--val-sequences from data.raw_dir and data.val_sequences. Opt-in: nothing in `dvc repro` needs it.
"""
from __future__ import annotations

import json
import os

from pipeline.apps.real_maps import gtfine_frames, video_frames
from pipeline.apps.real_maps_report import FLOOR_ROWS, cell, markdown, score_set
from pipeline.atomic import atomic_open
from stages.common import ArgumentParser, run


def parse_models(items) -> dict:
    models = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--model {item!r}: expected NAME=PATH (a model file or folder)")
        if name in models or name in FLOOR_ROWS:
            raise ValueError(f"--model {item!r}: the name {name!r} is taken")
        models[name] = path
    return models




def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", help="Cityscapes folder with a train split only (the video "
                        "frames), split by --val-sequences")
    parser.add_argument("--val-sequences", nargs="+", default=None,
                        help="held-out sequences <city>_<sequence> (scored; never trained on)")
    parser.add_argument("--gtfine", help="pix2pixHD-layout folder of human-labelled frames: "
                        "those of the held-out sequences are scored as a second set")
    parser.add_argument("--params", help="a project's params file: data.raw_dir and "
                        "data.val_sequences where data.sources says cityscapes is real")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="a model file or folder to score (repeatable)")
    parser.add_argument("--versus", action="append", default=[], metavar="NAME",
                        help="a --model NAME every other row is also paired with (repeatable)")
    parser.add_argument("--threshold", type=float, default=0.02)
    parser.add_argument("--rule", default="tight", choices=("tight", "authors"))
    parser.add_argument("--out", default="reports/real_maps", help="writes OUT.json, OUT.md")
    parser.add_argument("--figures", default="artifacts/real_maps",
                        help="picture grid folder ('' for none); keep it out of git")
    args = parser.parse_args()
    raw, sequences = args.raw, args.val_sequences
    if args.params:
        from pipeline.config.loading import load_params
        params = load_params(args.params)
        if params.data.source_of("cityscapes") != "real":
            raise ValueError(f"{args.params}: data.sources says cityscapes is synthetic; "
                             f"real maps need data.sources: {{cityscapes: real}}")
        raw = raw or params.data.raw_dir
        sequences = sequences or params.data.val_sequences
    if not raw or not sequences:
        raise ValueError("name the real maps: --raw DIR --val-sequences SEQ ... (or --params "
                         "of a project on real Cityscapes)")
    models = parse_models(args.model)
    if not models:
        raise ValueError("no --model NAME=PATH to score")
    for name in args.versus:
        if name not in models:
            raise ValueError(f"--versus {name}: not a --model name ({', '.join(models)})")
    from pipeline.apps.editing import load_editor
    editors = {name: load_editor(path, translator="none") for name, path in models.items()}
    for name, editor in editors.items():
        if editor.dataset != "cityscapes":
            raise ValueError(f"--model {name}: a {editor.dataset} model, not cityscapes")
    train, held_out = video_frames(raw, sequences)
    sets = {"held-out video frames (pseudo-labels)": held_out}
    if args.gtfine:
        human = gtfine_frames(args.gtfine, sequences)
        if human is not None:
            sets["their gtFine frames (human labels)"] = human
    results = {}
    for set_name, frames in sets.items():
        figures = (os.path.join(args.figures, "gtfine" if "gtFine" in set_name else "video")
                   if args.figures else None)
        results[set_name] = score_set(frames, train, editors, args.threshold, args.rule,
                                      figures, progress=True, versus=args.versus)
    setup = {"raw": raw, "val_sequences": list(sequences), "rule": args.rule,
             "threshold": args.threshold, "models": models, "versus": args.versus}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with atomic_open(args.out + ".json", "w") as f:
        json.dump({"setup": setup, "sets": results}, f, indent=1)
    with atomic_open(args.out + ".md", "w") as f:
        f.write(markdown(results, setup))
    for set_name, result in results.items():
        print(f"{set_name}: {result['boxes']} boxes")
        for row, entry in result.get("rows", {}).items():
            fill = entry.get("minus_fill-box")
            print(f"  {row:24s} tIOU {entry['tiou']['mean']:.3f}"
                  + (f"  - fill-box {cell(fill['by_sequence'])} (by sequence)" if fill else "")
                  + f"  blocky {entry['blocky_share'] * 100:.0f} %")
    print(f"-> {args.out}.md, {args.out}.json")


if __name__ == "__main__":
    run(main)
