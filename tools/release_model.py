"""Release a trained study model for users: its weights in fp16, its metadata, and where it came
from (the study run, its test scores with their interval, the code), into models/.

  .venv/bin/python tools/release_model.py --run .study/paper/repo/artifacts/models/mexgan-cityscapes/seed0 \
      --translator .study/paper/repo/artifacts/models/translator-cityscapes \
      --study reports/study --out models

writes OUT/<row>/seed<k>/generator.pt and OUT/translator-<dataset>/generator.pt (the layout
`stages.edit` finds the translator in) and OUT/<row>.json (the provenance, also inside the
model file as `release`).

A model trained on real label maps is released with its real-map scores instead of (or beside)
a study's table, and without a translator (no photo):

  .venv/bin/python tools/release_model.py --run STUDY/artifacts/models/twosm-full-cityscapes/seed0 \
      --real-maps reports/real_maps.json --real-maps-name released \
      --training-data "pseudo-labelled Cityscapes video frames ..." --out models The released model loads like any pipeline model:
`python -m stages.edit models/mexgan-cityscapes/seed0 MAP --edit X1,Y1,X2,Y2 car`.
Errors: one line, exit status 1; nothing written.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from pipeline.atomic import atomic_open, write_json_atomic  # noqa: E402
from pipeline.training.checkpoints import load_model_file  # noqa: E402

MAX_BYTES = 10 * 1024 * 1024  # a released model stays small enough for git


def half_weights(state: dict) -> dict:
    """The model file with its generator's floating-point weights in fp16 (load_generator
    copies them into the fp32 network)."""
    generator = {k: v.half() if torch.is_floating_point(v) else v
                 for k, v in state["generator"].items()}
    return {**state, "generator": generator}


def study_scores(study: str, row: str) -> dict:
    """The row's test tIOU / hamm with their 95 % interval, from a study's table1.csv."""
    table = pd.read_csv(os.path.join(study, "table1.csv"))
    found = {}
    for metric in ("tiou", "hamm"):
        line = table[(table["row"] == row) & (table["metric"] == metric)]
        if not len(line):
            raise ValueError(f"{study}/table1.csv has no {metric} of {row}")
        d = line.iloc[0]
        found[metric] = {"mean": float(d["ours"]), "ci_low": float(d["ci_low"]),
                         "ci_high": float(d["ci_high"])}
    return found


def real_map_scores(path: str, name: str) -> dict:
    """The model's tIOU and its differences to the floors on each real frame set of a
    stages.real_maps JSON (under the name it was scored as)."""
    with open(path) as f:
        report = json.load(f)
    found = {}
    for set_name, result in report["sets"].items():
        if name in result.get("rows", {}):
            found[set_name] = {"boxes": result["boxes"], "sequences": result["sequences"],
                               **result["rows"][name]}
    if not found:
        raise ValueError(f"{path}: no row {name!r} (scored: "
                         f"{', '.join(sorted({r for s in report['sets'].values() for r in s.get('rows', {})}))})")
    return {"setup": report["setup"], "scores": found}


def release(run: str, translator: str | None, study: str | None, out: str,
            trained_code: str = "", real_maps: str | None = None, real_maps_name: str = "",
            training_data: str = "", data_dir: str | None = None) -> dict:
    if not study and not real_maps:
        raise ValueError("give --study (its table1.csv) or --real-maps (stages.real_maps JSON): "
                         "a release says how well the model scores")
    summary_path = os.path.join(run, "train_summary.json")
    with open(summary_path) as f:
        summary = json.load(f)
    state = load_model_file(os.path.join(run, "generator.pt"), ("generator", "meta"))
    meta = state["meta"]
    row, dataset, seed = meta["row"], meta["dataset"], summary["seed"]
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    provenance = {
        "row": row, "dataset": dataset, "seed": seed, "size": [meta["width"], meta["height"]],
        "steps": summary["steps"], "epochs": summary["epochs"],
        "profile": summary["profile"], "perceptual_loss": summary["vgg_source"],
        "trained_at_commit": trained_code or meta["commit"], "params_hash": meta["params_hash"],
        "released_at_commit": commit,
        "weights": "fp16 (the network runs in fp32; the weights are rounded once)"}
    if training_data:
        provenance["training_data"] = training_data
    if study:
        provenance["study"] = os.path.relpath(study, ROOT)
        provenance["study_test_scores_all_seeds"] = study_scores(study, row)
    if data_dir:  # which sequences trained it: a real-map score is only fair on the others
        from pipeline.data.datasets import read_split
        from pipeline.data.sets.cityscapes import sequence_of
        names = read_split(os.path.join(data_dir, "train.h5")).names
        provenance["trained_on_sequences"] = sorted({sequence_of(name) for name in names})
    if real_maps:
        provenance["real_maps"] = real_map_scores(real_maps, real_maps_name or row)
        held_out = set(provenance["real_maps"]["setup"]["val_sequences"])
        if held_out & set(provenance.get("trained_on_sequences", ())):
            raise ValueError(f"{real_maps}: scored on sequences the model trained on: "
                             f"{', '.join(sorted(held_out & set(provenance['trained_on_sequences'])))}")
    files = {os.path.join(out, row, f"seed{seed}", "generator.pt"):
             {**half_weights(state), "release": provenance}}
    if translator:
        translator_state = load_model_file(os.path.join(translator, "generator.pt"),
                                           ("generator", "meta"))
        files[os.path.join(out, f"translator-{dataset}", "generator.pt")] = \
            {**half_weights(translator_state),
             "release": {"row": f"translator-{dataset}", "for": row,
                         "study": provenance.get("study", "")}}
    payloads = {}
    for path, content in files.items():   # every size is checked before anything is written
        buffer = io.BytesIO()
        torch.save(content, buffer)
        if buffer.tell() > MAX_BYTES:
            raise ValueError(f"{path}: {buffer.tell()} bytes, more than the {MAX_BYTES} a "
                             "release may have (nothing written)")
        payloads[path] = buffer.getvalue()
    for path, payload in payloads.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_open(path, "wb") as f:
            f.write(payload)
    write_json_atomic(os.path.join(out, f"{row}.json"), provenance, indent=1)
    return provenance


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a training run's model folder")
    parser.add_argument("--translator", help="the dataset's G_I model folder (none: no photo)")
    parser.add_argument("--study", help="the study folder with its table1.csv")
    parser.add_argument("--real-maps", help="a stages.real_maps JSON that scored this model")
    parser.add_argument("--real-maps-name", default="",
                        help="the name the model was scored under there (default: its row)")
    parser.add_argument("--data", help="the prepared dataset folder the run trained on "
                        "(records its training sequences)")
    parser.add_argument("--training-data", default="",
                        help="what the model was trained on, and the terms that apply")
    parser.add_argument("--out", default=os.path.join(ROOT, "models"))
    parser.add_argument("--trained-code", default="",
                        help="the code that trained the run, when its model file's commit is "
                             "not one of this repository's (a study's scratch copy)")
    args = parser.parse_args()
    try:
        print(json.dumps(release(args.run, args.translator, args.study, args.out,
                                 args.trained_code, args.real_maps, args.real_maps_name,
                                 args.training_data, args.data), indent=1))
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
