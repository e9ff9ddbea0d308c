"""Atomic writes, one guarantee for every file and folder the pipeline writes: `path` holds
either its old content or the complete new one, also after a kill or a power cut. The new
content goes to a temporary name beside `path` (`<path>.tmp.<pid>`), is flushed and fsynced,
renamed over `path`, and the folder holding it is fsynced; on an error the temporary file is
removed and `path` is untouched. A caller that writes its temporary itself (a download's part
file, a checkpoint, an extracted folder) puts it in place with move_into_place, the same
guarantee. Only this module calls os.replace and os.fsync."""
from __future__ import annotations

import contextlib
import json
import os
import shutil


def fsync_dir(path: str) -> None:
    """fsync the folder that holds `path` (a rename is durable once its folder is); a file
    system that cannot fsync folders is left as it is."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path to write a file (or fill a folder) at; on success it replaces
    `path` (a folder: see replace_dir), durably."""
    tmp = f"{path}.tmp.{os.getpid()}"
    _remove(tmp)
    try:
        yield tmp
        move_into_place(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", **kwargs):
    """open() for writing, atomically (see the module docstring)."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_text_atomic(path: str, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json_atomic(path: str, data, indent: int = 2, sort_keys: bool = False) -> None:
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=indent, sort_keys=sort_keys)
        f.write("\n")


def move_into_place(staged: str, path: str) -> None:
    """Put the complete file or folder `staged`, which the caller wrote, at `path` (same file
    system), durably: a file is fsynced, renamed over `path` and its folder fsynced; a folder,
    or anything replacing a folder, goes through replace_dir (swapped whole, never merged). On
    an error `path` is untouched and `staged` is left to the caller."""
    is_folder = os.path.isdir(staged)
    if not is_folder:
        fsync_file(staged)
    if is_folder or os.path.isdir(path):
        replace_dir(staged, path)
        return
    os.replace(staged, path)
    fsync_dir(path)


def replace_dir(staged: str, path: str) -> None:
    """Put the complete folder `staged` at `path`: an old folder there is renamed aside first and
    removed after, so `path` is always either the old folder or the new one (absent only
    between the two renames, never half-written)."""
    old = f"{path}.old.{os.getpid()}"
    _remove(old)
    had_old = os.path.lexists(path)
    if had_old:
        os.replace(path, old)
    try:
        os.replace(staged, path)
    except BaseException:
        if had_old:
            os.replace(old, path)
        raise
    fsync_dir(path)
    if had_old:
        _remove(old)
