"""Atomic checkpoint files: written to a temp file, fsynced, then renamed, so a killed run never
leaves a file that a later run would take for good. The previous checkpoint is kept next to the
newest one, so that a damaged newest file falls back to the one before it."""
from __future__ import annotations

import glob
import logging
import os

import torch

from pipeline.atomic import fsync_dir

log = logging.getLogger(__name__)


def save_atomic(obj, path: str, keep_previous: str | None = None) -> None:
    """torch.save `obj` to `path` atomically (temp file + fsync + rename).

    keep_previous: where the file now at `path` goes (e.g. checkpoint.prev.pt). It is hard-linked
    there before the rename, so at every moment `path` holds a complete file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and os.path.exists(path):
            link = f"{keep_previous}.tmp.{os.getpid()}"
            try:
                if os.path.lexists(link):
                    os.remove(link)
                os.link(path, link)
                os.replace(link, keep_previous)
            except OSError:  # no hard links here: a plain rename (path is briefly absent)
                os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    fsync_dir(path)


def remove_stale_temps(directory: str) -> None:
    """Delete temp files a killed writer left in `directory` (`<name>.tmp.<pid>`)."""
    for path in glob.glob(os.path.join(glob.escape(directory), "*.tmp.*")):
        if path.rsplit(".", 1)[-1].isdigit() and os.path.isfile(path):
            log.info("removing %s, left by an interrupted write", path)
            os.remove(path)


def load_checkpoint(path: str, required_keys=()):
    """The checkpoint at `path`, or None if there is none. A truncated or foreign file is
    reported and skipped, never loaded."""
    if not os.path.exists(path):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for a damaged zip / pickle
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        log.warning("skipping unreadable checkpoint %s (%s)", path, message)
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
        raise ValueError(f"model file {path} is unreadable or incomplete (truncated or not a "
                         f"model file): rerun its training stage")
    return state
