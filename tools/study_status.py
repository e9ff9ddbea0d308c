"""How far a study has got (`make study STATUS=1 PROFILE=...`): each training run of its scratch
copy, done, at which epoch of how many (its newest checkpoint), or not started, and the epochs
done of all. Reads files only: safe beside a running study.

  python tools/study_status.py SCRATCH/repo
"""
from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.config.loading import load_params  # noqa: E402
from pipeline.kinds import kind_of  # noqa: E402
from pipeline.models.model_files import GENERATOR_FILE  # noqa: E402
from pipeline.training.checkpoints import CHECKPOINT, safe_torch_load  # noqa: E402
from pipeline.training.runs import code_digest  # noqa: E402


def planned_runs(params) -> list:
    """(row, seed, epochs, model folder relative to the repository) of every training run the
    study's params ask for: the segmentation rows (Params.row_epochs) and Table 3's
    (inpainting.epochs), each once per seed, in its kind's model folder."""
    epochs = {name: params.row_epochs(name) for name in params.rows}
    epochs.update({name: params.inpainting.epochs for name in params.inpainting_rows})
    return [(row, seed, total, kind_of(params, row).model_dir(row, seed))
            for row, total in epochs.items() for seed in params.seeds]


def run_state(folder: str, epochs: int, now: float, code: str) -> dict:
    """One run's state from its folder: {"state": done | training | restarts | not started,
    "epoch", "epochs", "age" (seconds since its newest checkpoint), "why" (of a restart)}.
    The trainer resumes only from a checkpoint of the run's whole fingerprint; two of its parts
    are checked here, the ones a study changes: the number of epochs and the library's code
    (`code`: code_digest of the scratch copy's pipeline/). A checkpoint that differs in either
    starts again. The other params are the scratch copy's own params.yaml, which the checkpoint
    was written from. A finished run's generator file is written last."""
    checkpoint = os.path.join(folder, CHECKPOINT)
    if os.path.exists(os.path.join(folder, GENERATOR_FILE)):
        return {"state": "done", "epoch": epochs, "epochs": epochs}
    if not os.path.exists(checkpoint):
        return {"state": "not started", "epoch": 0, "epochs": epochs}
    state = safe_torch_load(checkpoint)
    fingerprint = json.loads(state["fingerprint"])
    made_for = fingerprint.get("epochs", epochs)
    why = []
    if made_for != epochs:
        why.append(f"{made_for} epochs")
    if fingerprint.get("code") != code:
        why.append("other code")
    return {"state": "restarts" if why else "training", "why": " and ".join(why),
            "epoch": int(state["epoch"]), "epochs": made_for,
            "age": now - os.path.getmtime(checkpoint)}


def status_lines(repo: str, now: float | None = None) -> list:
    """The lines `STATUS=1` prints for the study whose scratch copy is `repo`."""
    params = load_params(os.path.join(repo, "params.yaml"))
    now = time.time() if now is None else now
    runs = planned_runs(params)
    code = code_digest(os.path.join(repo, "pipeline"))
    width = max(len(row) for row, _, _, _ in runs)
    lines, done_epochs, counts = [], 0, {}
    for row, seed, epochs, folder in runs:
        state = run_state(os.path.join(repo, folder), epochs, now, code)
        counts[state["state"]] = counts.get(state["state"], 0) + 1
        text = state["state"]
        if state["state"] == "training":
            done_epochs += state["epoch"]
            text = (f"epoch {state['epoch']} / {epochs} (newest checkpoint "
                    f"{state['age'] / 60:.0f} min ago)")
        elif state["state"] == "restarts":
            text = (f"a checkpoint of {state['why']} (epoch {state['epoch']} / "
                    f"{state['epochs']}): starts again, {epochs} epochs")
        elif state["state"] == "done":
            done_epochs += epochs
        lines.append(f"{row:<{width}}  seed{seed}  {text}")
    total = sum(epochs for _, _, epochs, _ in runs)
    lines.append(f"== {counts.get('done', 0)} of {len(runs)} runs done, "
                 f"{counts.get('training', 0)} part-trained, "
                 f"{counts.get('restarts', 0) + counts.get('not started', 0)} to start; "
                 f"{done_epochs} of {total} epochs ({100 * done_epochs / total:.0f} %)")
    return lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python tools/study_status.py SCRATCH/repo", file=sys.stderr)
        return 2
    repo = argv[0]
    if not os.path.exists(os.path.join(repo, "params.yaml")):
        print(f"error: {repo}/params.yaml does not exist: no study has started there",
              file=sys.stderr)
        return 1
    print("\n".join(status_lines(repo)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
