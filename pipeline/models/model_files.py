"""The model file (generator.pt): its layout, its metadata and loading it back. Every trained
generator (structure rows, TwoSM rows, GL rows, the translator G_I) is saved with a `meta` dict
that says what it is for; pipeline.kinds.load_generator checks it (check_model_meta) and
rebuilds the network by the kind it names. Also the file names of a training run's outputs."""
from __future__ import annotations

import os
import subprocess

GENERATOR_FILE = "generator.pt"
SUMMARY_FILE = "train_summary.json"
# Time and memory vary from run to run: kept in their own file, which .dvcignore hides from DVC
# (so dvc.lock does not change when only they did) and git tracks under reports/train/.
RESOURCES_FILE = "resources.json"
RESOURCE_KEYS = ("train_seconds", "resumes")  # plus every mem_* key: run history, not results

# Layout of generator.pt. 2: a `meta` dict says what the model is for (dataset, label names,
# palette, input size, conditioning, row, params hash, code commit); check_model_meta checks it.
MODEL_FORMAT = 2
# The generator input of each kind of model (`meta["conditioning"]`).
CONDITIONING = {
    "structure": "one-hot(Su) [num_labels] + instance edges [1] + box mask [1]",
    "twosm": "one-hot(Su) [num_labels] + instance edges [1] + box mask [1] of the observation",
    "translator": "colour map in the dataset palette [3], [-1, 1]",
    "inpainting": "photo with the hole filled with `fill` [3] + hole mask [1]",
}


class ModelFileError(ValueError):
    """A model file that cannot be used here (older layout, another dataset or kind)."""


def code_commit() -> str:
    """The git commit of the code that trains (`<sha>`, `<sha>-dirty` with uncommitted changes
    to tracked files, `unknown` outside a git checkout)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def model_metadata(kind: str, dataset: str, width: int, height: int, name: str,
                   in_channels: int, params_hash: str, commit: str | None = None) -> dict:
    """What a user needs to run a model file without the pipeline around it (generator.pt's
    `meta`): its dataset's label names and palette, the input size it was trained at, its
    conditioning, the row name, the hash of the configuration it was trained with and the code
    commit."""
    from pipeline.data.sets import get_spec
    spec = get_spec(dataset)
    return {"format": MODEL_FORMAT, "kind": kind, "row": name, "dataset": dataset,
            "label_names": list(spec.label_names), "palette": spec.palette.tolist(),
            "width": int(width), "height": int(height), "in_channels": int(in_channels),
            "conditioning": CONDITIONING[kind], "edit_classes": list(spec.edit_classes),
            "params_hash": params_hash,
            "commit": code_commit() if commit is None else commit}


def older_layout_message(path: str) -> str:
    return (f"{path}: model file of an older layout (no dataset / palette / size metadata, "
            f"format < {MODEL_FORMAT}); rebuild it with `dvc repro` of its training stage "
            "(train_baseline@<row>-<seed>, train_mex@..., train_twosm@..., "
            "translator@<dataset>), or add the metadata once with "
            "`python -m tools.add_model_metadata`")


def check_model_meta(state, path: str, *, dataset: str | None = None,
                     kinds=None) -> dict:
    """generator.pt's `meta`, checked: present (this layout), of `dataset` and of one of
    `kinds` when given. Raises ModelFileError with a one-line message naming the file."""
    meta = state.get("meta") if isinstance(state, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        if isinstance(meta, dict) and isinstance(meta.get("format"), int) \
                and meta["format"] > MODEL_FORMAT:
            raise ModelFileError(f"{path}: model file format {meta['format']} is newer than "
                                 f"this code's {MODEL_FORMAT} (update the code)")
        raise ModelFileError(older_layout_message(path))
    if dataset is not None and meta["dataset"] != dataset:
        raise ModelFileError(f"{path}: a model of dataset {meta['dataset']!r} "
                             f"(row {meta['row']}), not {dataset!r}")
    if kinds is not None and meta["kind"] not in kinds:
        raise ModelFileError(f"{path}: a {meta['kind']} model (row {meta['row']}), not a "
                             f"{' / '.join(kinds)} model")
    return meta
