"""The params files of the GPU study run (tools/gpu_study.sh), derived from the checkout's own
files at run time so that they follow every change of params_study*.yaml / params_paper.yaml:

  profile  IN OUT PROFILE    IN with the top-level `profile` set (as tools/study.sh does)
  scale    IN OUT FRACTION   IN with every training length (train.epochs and the rows' own
                             `epochs`) times FRACTION, rounded down, at least 1 epoch: the study
                             that fits the device time (tools/gpu/calibrate.py measures FRACTION)
  study-smoke IN OUT         the CPU smoke of a study file (GPU_STUDY_SMOKE=1): seed 0, 1 epoch,
                             40 training / 20 test maps: the same stages and code path, minutes
  paper-smoke IN OUT         params_paper.yaml at its sizes (256x128, 192x144, 256x256, facade
                             248x242, the paper's networks) on synthetic data, seed 0, every
                             training stage a few hundred steps (PAPER_SMOKE below)
  paper-cpu IN OUT           the paper smoke cut to CPU size (GPU_STUDY_SMOKE=1): Cityscapes and
                             Facade only, one row of each kind, the demo's small networks
  runs FILE...               training runs (rows x seeds) of each file, one number a line

Every file written is checked with pipeline.config.loading.load_params before it is kept.
"""
from __future__ import annotations

import copy
import math
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pipeline.config.sections import MAP_ROW_SECTIONS as ROW_GROUPS  # noqa: E402

# The paper-size smoke: only what makes it short; sizes and networks stay the paper's.
PAPER_SMOKE = {
    "seeds": [0],
    "data": {"source": "synthetic"},
    "train": {"epochs": 3,            # ~85 maps with a box per epoch: ~250 steps per row
              "eval_every": 90,        # a few learning-curve points at paper size
              "eval_boxes": 8},
    "translator": {"epochs": 2},
    "inpainting": {"synthetic_train": 64, "synthetic_test": 8,   # batch 64: 1 step per epoch
                   "epochs": 60, "completion_epochs": 12, "discriminator_epochs": 4},
}
PAPER_SMOKE_MAPS = {"synthetic_train": 100, "synthetic_test": 16}   # every dataset

# The CPU-sized study smoke (GPU_STUDY_SMOKE=1).
STUDY_SMOKE = {
    "seeds": [0],
    "train": {"epochs": 1, "eval_every": 10, "eval_boxes": 8},
    "inpainting": {"synthetic_train": 16, "synthetic_test": 4, "test_holes": 4, "fid_holes": 2},
}
STUDY_SMOKE_MAPS = {"synthetic_train": 40, "synthetic_test": 20}


def read(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def _merge(raw: dict, changes: dict) -> dict:
    out = copy.deepcopy(raw)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def with_profile(raw: dict, profile: str) -> dict:
    return {**copy.deepcopy(raw), "profile": profile}


def scaled(raw: dict, fraction: float) -> dict:
    """Every training length times `fraction` (0 < fraction <= 1), rounded down, at least 1."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction}: in (0, 1]")
    out = copy.deepcopy(raw)

    def cut(epochs: int) -> int:
        return max(1, math.floor(epochs * fraction + 1e-9))
    out["train"]["epochs"] = cut(out["train"]["epochs"])
    for group in ROW_GROUPS:
        for row in (out.get(group) or {}).values():
            if isinstance(row, dict) and row.get("epochs"):
                row["epochs"] = cut(row["epochs"])
    return out


def study_smoke(raw: dict) -> dict:
    out = _merge(raw, STUDY_SMOKE)
    for dataset in out["datasets"].values():
        dataset.update(STUDY_SMOKE_MAPS)
    for group in ROW_GROUPS:
        for row in (out.get(group) or {}).values():
            if isinstance(row, dict) and row.get("epochs"):
                row["epochs"] = 1
    return out


def paper_smoke(raw: dict) -> dict:
    out = _merge(raw, PAPER_SMOKE)
    out["data"].pop("sources", None)   # every dataset synthetic: no real data travels
    for dataset in out["datasets"].values():
        dataset.update(PAPER_SMOKE_MAPS)
    for group in ROW_GROUPS:
        for row in (out.get(group) or {}).values():
            if isinstance(row, dict) and row.get("epochs"):
                row["epochs"] = PAPER_SMOKE["train"]["epochs"]
    return out


def paper_cpu(raw: dict) -> dict:
    """The paper smoke at CPU size: what the GPU run does, on the demo's networks."""
    out = paper_smoke(raw)
    out["datasets"] = {"cityscapes": {**out["datasets"]["cityscapes"], "width": 64,
                                      "height": 32, "synthetic_train": 24, "synthetic_test": 12}}
    out["q_overrides"], out["q_sweep"] = {}, {}
    out["model"] = {**out["model"], "ngf": 16, "n_downsampling": 3, "n_blocks": 3, "ndf": 16}
    out["train"] = {**out["train"], "epochs": 1, "eval_every": 10, "data_workers": 1,
                    "cpu_threads": 1}
    out["translator"] = {"epochs": 1}
    out["loss"] = {**out["loss"], "without_vgg_weights": "drop"}
    out["twosm"] = {**out["twosm"], "crop_size": 32, "batch_size": 4}

    def first(group: str, dataset: str = "cityscapes") -> dict:
        rows = out.get(group) or {}
        chosen = {}
        for name, row in rows.items():
            if row.get("dataset", dataset) == dataset and row.get("loss") not in \
                    {r.get("loss") for r in chosen.values()}:
                chosen[name] = row
            if row.get("q_from", "q") != "q":   # the q sweep's rows
                chosen.pop(name, None)
        return chosen
    out["baselines"] = first("baselines")
    out["mex_rows"] = first("mex_rows")
    out["twosm_rows"] = dict(list((out.get("twosm_rows") or {}).items())[:1])
    out["inpainting"] = {**out["inpainting"], "width": 48, "height": 46, "synthetic_train": 16,
                         "synthetic_test": 4, "test_holes": 4, "fid_holes": 2, "ngf": 16,
                         "ndf": 16, "epochs": 4, "completion_epochs": 1,
                         "discriminator_epochs": 1, "batch_size": 8}
    out["inpainting_rows"] = dict(list((out.get("inpainting_rows") or {}).items())[:1])
    rows = {**out["baselines"], **out["mex_rows"]}
    out["huev"] = {**out["huev"], "rows": list(rows)[:2], "editor_row": list(rows)[-1]}
    return out


def runs(path: str) -> int:
    """Training runs (rows x seeds) of a params file."""
    from pipeline.config.loading import load_params
    params = load_params(path)
    return len(params.rows) * len(params.seeds)


def write(raw: dict, path: str) -> None:
    """Write `raw` as YAML after checking it with the pipeline's loader (a bad derivation fails
    here, naming the key, not in the middle of the run)."""
    from pipeline.config.validation import parse_params
    parse_params(copy.deepcopy(raw))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("# written by tools/gpu/params.py for the GPU study run (tools/gpu_study.sh)\n")
        yaml.safe_dump(raw, f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "runs":
        for path in args:
            print(runs(path))
        return 0
    transforms = {"study-smoke": study_smoke, "paper-smoke": paper_smoke, "paper-cpu": paper_cpu}
    if command in transforms and len(args) == 2:
        write(transforms[command](read(args[0])), args[1])
    elif command == "profile" and len(args) == 3:
        write(with_profile(read(args[0]), args[2]), args[1])
    elif command == "scale" and len(args) == 3:
        write(scaled(read(args[0]), float(args[2])), args[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError, KeyError) as err:
        print(f"error: tools/gpu/params.py {' '.join(sys.argv[1:])}: {err}", file=sys.stderr)
        sys.exit(1)
