"""Training checkpoints: what they hold, finding the one to resume from, resuming, writing.

A checkpoint holds everything needed to resume bit-exactly: generator, discriminators, both Adam
states, the position (epoch, batch within the epoch, step), every RNG state and the run log's
progress (elapsed time, memory, last loss terms, resumes). The newest checkpoint is
`checkpoint.pt`, the one before it `checkpoint.prev.pt`: a damaged newest file falls back to the
previous one, and a file of other params is never used. The frozen VGG19 is left out (it is
rebuilt identically by every run; a digest in the checkpoint checks that).

Files are atomic: written to a temp file, fsynced, then renamed, so a killed run never leaves a
file that a later run would take for good."""
from __future__ import annotations

import glob
import hashlib
import logging
import os
import pickle
import random

import numpy as np
import torch
import torch.nn as nn

from pipeline.atomic import move_into_place
from pipeline.models.networks import VGG19Features

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
CHECKPOINT_FORMAT = 3  # 3: the numpy RNG state as plain types (weights_only loads)
CHECKPOINT_KEYS = ("format", "generator", "losses", "opt_g", "opt_d", "epoch", "batch", "step",
                   "rng", "fingerprint", "frozen_digest", "progress")


def save_atomic(obj, path: str, keep_previous: str | None = None) -> None:
    """torch.save `obj` to `path` atomically (pipeline.atomic.move_into_place: temp file,
    fsync, rename, fsync of the folder).

    keep_previous: where the file now at `path` goes (e.g. checkpoint.prev.pt). It is hard-linked
    there before the rename, so at every moment `path` holds a complete file."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
        if keep_previous and os.path.exists(path):
            link = f"{keep_previous}.tmp.{os.getpid()}"
            try:
                if os.path.lexists(link):
                    os.remove(link)
                os.link(path, link)
                move_into_place(link, keep_previous)
            except OSError:  # no hard links here: a plain rename (path is briefly absent)
                move_into_place(path, keep_previous)
        move_into_place(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_stale_temps(directory: str) -> None:
    """Delete temp files a killed writer left in `directory` (`<name>.tmp.<pid>`)."""
    for path in glob.glob(os.path.join(glob.escape(directory), "*.tmp.*")):
        if path.rsplit(".", 1)[-1].isdigit() and os.path.isfile(path):
            log.info("removing %s, left by an interrupted write", path)
            os.remove(path)


class UnsafeModelFile(ValueError):
    """A file whose pickle holds more than tensors and plain containers: loading it could run
    code, so it is refused without loading."""


def safe_torch_load(path: str):
    """torch.load with weights_only=True: tensors, dicts, lists, tuples, str, numbers, None.
    A pickle that would build any other object (and so could run code) raises UnsafeModelFile
    naming the file, before anything of it runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UnsafeModelFile(
            f"{path}: refused: it is not a plain weights file (its pickle asks for Python "
            f"objects beyond tensors and plain containers, which could run code; "
            f"{first[:160]})") from None


def load_checkpoint(path: str, required_keys=()):
    """The checkpoint at `path`, or None if there is none. A truncated or foreign file is
    reported and skipped, never loaded (a file whose pickle could run code among them, see
    safe_torch_load)."""
    if not os.path.exists(path):
        return None
    try:
        state = safe_torch_load(path)
    except UnsafeModelFile as err:  # e.g. a checkpoint of an older layout (numpy RNG state)
        log.warning("skipping checkpoint %s (%s)", path, err)
        return None
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
    try:
        state = safe_torch_load(path)  # UnsafeModelFile for a pickle that could run code
    except UnsafeModelFile:
        raise
    except Exception:  # torch raises several types for a damaged zip / pickle
        state = None
    if not isinstance(state, dict) or any(k not in state for k in required_keys):
        raise ValueError(f"model file {path} is unreadable or incomplete (truncated or not a "
                         f"model file): rerun its training stage")
    return state


#---------------------------------------------------------------------------------------------
# What a training checkpoint holds


def _rng_state() -> dict:
    """The state of every RNG the training draws from: python, numpy, torch, CUDA (plain types
    and tensors only, so that checkpoints load with weights_only=True)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)),
                   "pos": int(position), "has_gauss": int(has_gauss),
                   "cached_gaussian": float(cached_gaussian)}
    return {"python": random.getstate(), "numpy": numpy_state,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _frozen_prefixes(loss: nn.Module) -> tuple:
    """State-dict prefixes of the frozen feature extractors inside a plug-in (the VGG19 of the
    perceptual loss, ~80 MB): rebuilt identically by every run, so not checkpointed."""
    return tuple(f"{name}." for name, module in loss.named_modules()
                 if name and isinstance(module, VGG19Features))


def _loss_state(loss: nn.Module) -> dict:
    """A plug-in's state dict without its frozen feature extractors."""
    skip = _frozen_prefixes(loss)
    return {k: v for k, v in loss.state_dict().items() if not (skip and k.startswith(skip))}


def _load_loss_state(loss: nn.Module, state: dict) -> None:
    """Load a _loss_state into `loss`; an error unless it fits exactly."""
    skip = _frozen_prefixes(loss)
    missing, unexpected = loss.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (skip and k.startswith(skip))]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit {type(loss).__name__}: missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]}")


def frozen_digest(losses) -> str:
    """md5 of the frozen weights the checkpoints leave out (a resume must see the same ones)."""
    digest = hashlib.md5()
    for loss in losses:
        skip = _frozen_prefixes(loss)
        for key, value in loss.state_dict().items():
            if skip and key.startswith(skip):
                digest.update(key.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


#---------------------------------------------------------------------------------------------
# Finding the checkpoint to resume from


def checkpoint_paths(out_dir: str) -> list:
    """The checkpoint files of out_dir, newest first."""
    return [os.path.join(out_dir, CHECKPOINT), os.path.join(out_dir, PREVIOUS_CHECKPOINT)]


def find_checkpoint(out_dir: str, fingerprint: str, digest: str | None = None):
    """(state, path) of the newest checkpoint in out_dir that is readable, complete and was
    written for this configuration (`fingerprint`; `digest` of the frozen weights when given);
    (None, None) when there is none. A damaged newest file falls back to checkpoint.prev.pt; a
    checkpoint of other params (DVC persists the folder across param changes) is ignored and
    will be overwritten. Every skipped file is logged with the reason."""
    for path in checkpoint_paths(out_dir):
        if not os.path.exists(path):
            continue
        state = load_checkpoint(path, CHECKPOINT_KEYS)  # logs why a damaged file is skipped
        if state is None:
            continue
        if state["format"] != CHECKPOINT_FORMAT or state["fingerprint"] != fingerprint:
            log.info("not resuming from %s: it was written for other params or code", path)
            continue
        if digest is not None and state["frozen_digest"] != digest:
            log.warning("not resuming from %s: the frozen VGG19 weights differ from the ones it "
                        "was trained with", path)
            continue
        return state, path
    return None, None


#---------------------------------------------------------------------------------------------
# The checkpoints of a training run


class RunCheckpoints:
    """The checkpoints of one training run in `out_dir` (created; temp files of an interrupted
    write removed) for the networks and optimisers it trains. `resume` loads the newest usable
    one, `save` writes one (only where `writes`: rank 0 under torchrun). checkpoint.pt is
    rotated to checkpoint.prev.pt only while it holds a state of this run; a damaged or foreign
    file there is simply overwritten."""

    def __init__(self, out_dir: str, fingerprint: str, generator: nn.Module, losses: list,
                 opt_g, opt_d, writes: bool = True):
        os.makedirs(out_dir, exist_ok=True)
        remove_stale_temps(out_dir)
        self.out_dir, self.fingerprint, self.writes = out_dir, fingerprint, writes
        self.generator, self.losses, self.opt_g, self.opt_d = generator, losses, opt_g, opt_d
        self.path, self.previous_path = checkpoint_paths(out_dir)
        self.digest = frozen_digest(losses)
        self.last_good = "none"         # the newest checkpoint of this run (named in errors)
        self._newest_is_ours = False    # checkpoint.pt holds a state of this run

    def resume(self, desc: str) -> tuple:
        """(epoch, batch, step, progress) where training continues: the newest usable
        checkpoint's, loaded into the networks, optimisers and RNGs, its `progress` counting
        this resume; (0, 0, 0, None) without one. `desc` names the run in the log."""
        state, path = find_checkpoint(self.out_dir, self.fingerprint, self.digest)
        if state is None:
            if any(os.path.exists(p) for p in (self.path, self.previous_path)):
                log.info("%s: no usable checkpoint in %s, training from scratch", desc,
                         self.out_dir)
            return 0, 0, 0, None
        self.generator.load_state_dict(state["generator"])
        if len(state["losses"]) != len(self.losses):
            raise ValueError(f"{path}: {len(state['losses'])} loss plug-ins, "
                             f"this run has {len(self.losses)}")
        for loss, loss_state in zip(self.losses, state["losses"]):
            _load_loss_state(loss, loss_state)
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
        _set_rng_state(state["rng"])
        log.info("%s: resuming from %s at epoch %d, batch %d (step %d)", desc, path,
                 state["epoch"], state["batch"], state["step"])
        self.last_good, self._newest_is_ours = path, path == self.path
        progress = dict(state["progress"], resumes=state["progress"]["resumes"] + 1)
        return state["epoch"], state["batch"], state["step"], progress

    def save(self, epoch: int, batch: int, step: int, progress: dict) -> None:
        """Write the run's state after training step `step`, to continue at batch `batch` of
        epoch `epoch`, with the run log's `progress`."""
        if not self.writes:
            return
        save_atomic({"format": CHECKPOINT_FORMAT, "generator": self.generator.state_dict(),
                     "losses": [_loss_state(loss) for loss in self.losses],
                     "opt_g": self.opt_g.state_dict(),
                     "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
                     "epoch": epoch, "batch": batch, "step": step, "rng": _rng_state(),
                     "fingerprint": self.fingerprint, "frozen_digest": self.digest,
                     "progress": progress},
                    self.path, keep_previous=self.previous_path if self._newest_is_ours else None)
        self.last_good, self._newest_is_ours = self.path, True
