"""Runs before every stage module (`python -m stages.X`), before it imports anything else.

1. A python without the pinned requirements (the system python that `dvc` finds on PATH when
   .venv is not activated) is replaced by the project's .venv/bin/python, same arguments.
2. pipeline.training.platform.configure: the CPU settings every stage runs with -- portable mode
   (`train.portable` of the params file, default true; MEXGAN_PORTABLE=0/1 overrides) and the
   thread count (`train.cpu_threads`). They are environment variables that torch / numpy read
   when they load, so nothing here may import torch or numpy (docs/portability.md).
Only the standard library may be imported before step 1 (the system python has nothing else).
"""
import importlib.util
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_VENV = os.path.join(_ROOT, ".venv")
# Modules every stage needs that a bare python lacks; find_spec does not import them.
_REQUIRED = ("torch", "numpy", "yaml", "h5py", "dvclive")
_REEXEC_GUARD = "MEXGAN_REEXECUTED"


def _original_argv():
    """The interpreter's own command line (`python -m stages.train x`), if it can be known."""
    argv = getattr(sys, "orig_argv", None)  # python >= 3.10
    if argv:
        return list(argv)
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return None


def _reexec_under_venv():
    """exec .venv/bin/python with this process's arguments when this python lacks the
    requirements and is not that python already. Does nothing when it cannot (no .venv, the
    arguments unknown, already re-executed once): the stage then fails on its import error."""
    missing = [m for m in _REQUIRED if importlib.util.find_spec(m) is None]
    python = os.path.join(_VENV, "bin", "python")
    if not missing or os.environ.get(_REEXEC_GUARD) or not os.access(python, os.X_OK):
        return
    if os.path.realpath(sys.prefix) == os.path.realpath(_VENV):
        return
    argv = _original_argv()
    if not argv or len(argv) < 2:
        return
    print(f"note: {sys.executable} lacks {', '.join(missing)}; running {python} instead "
          "(activate .venv: `. .venv/bin/activate`, or use the make targets)", file=sys.stderr)
    sys.stderr.flush()
    os.environ[_REEXEC_GUARD] = "1"
    os.execv(python, [python] + argv[1:])


_reexec_under_venv()

from pipeline.training import platform as _platform  # noqa: E402 - after the re-exec, on purpose

if not _platform.is_configured():  # the first caller in a process decides (tests: conftest.py)
    try:
        _platform.configure_from_argv()
    except (ValueError, _platform.LateConfiguration) as _err:
        print(f"error: {_err}", file=sys.stderr)
        sys.exit(2)
