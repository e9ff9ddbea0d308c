"""What every stage CLI shares: logging set-up and the one-line error contract."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback


class UsageError(ValueError):
    """A bad command line (argparse's message)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line becomes the one-line `error: ...` of `run` (exit 2)
    instead of argparse's usage block."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def error_line(err: BaseException) -> str:
    """The one line printed for an error: its message's first line, or its type."""
    text = str(err).strip()
    if isinstance(err, KeyError) and text:
        text = f"missing key {text}"
    return " ".join(text.splitlines()[0].split()) if text else type(err).__name__


def run(main) -> None:
    """Run `main()`; any error becomes one line on stderr and exit status 1 (2 for a bad command
    line). MEXGAN_DEBUG=1 prints the traceback too."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the CLI contract: one line, non-zero exit
        if os.environ.get("MEXGAN_DEBUG"):
            traceback.print_exc()
        sys.stdout.flush()
        print(f"error: {error_line(err)}", file=sys.stderr, flush=True)
        sys.exit(2 if isinstance(err, UsageError) else 1)


def relaunch_under_torchrun(processes: int, module: str, argv) -> None:
    """With train.processes > 1, replace this process by `torchrun` running the same stage on
    that many ranks (one node); under torchrun already (WORLD_SIZE set), do nothing."""
    import os
    import shutil
    if processes <= 1 or "WORLD_SIZE" in os.environ:
        return
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        raise RuntimeError("train.processes > 1 needs torchrun on PATH (it comes with torch)")
    os.execv(torchrun, [torchrun, "--standalone", f"--nproc_per_node={processes}", "-m",
                        module, *argv])
