"""Atomic checkpoint files: written to a temp file, fsynced, then renamed, so a killed run never
leaves a file that a later run would take for good."""
from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def save_atomic(obj, path: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    directory = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_checkpoint(path: str, required_keys=()):
    """The checkpoint at `path`, or None if there is none. A truncated or foreign file is
    reported and skipped, never loaded."""
    if not os.path.exists(path):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for a damaged zip / pickle
        log.warning("skipping unreadable checkpoint %s (%s)", path, str(err).splitlines()[0])
        return None
    missing = [k for k in required_keys if not isinstance(state, dict) or k not in state]
    if missing:
        log.warning("skipping checkpoint %s: missing %s", path, ", ".join(missing))
        return None
    return state


def load_model_file(path: str, required_keys=()):
    """Like load_checkpoint, but a missing or unreadable final model file is an error."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist (run its training stage)")
    state = load_checkpoint(path, required_keys)
    if state is None:
        raise ValueError(f"model file {path} is unreadable or incomplete")
    return state
