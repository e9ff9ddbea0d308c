"""`dvc repro` with the training runs N at a time (`make study`: one CPU thread a run).

DVC runs one stage at a time and one `dvc repro` holds the repository's lock, so a study whose
runs each use one CPU thread (or a slice of one GPU) would leave the other cores idle. This tool:

1. reproduces the stages the training runs depend on (`dvc repro <their upstream stages>`);
2. runs every out-of-date `train_*` and `translator` stage's own command, `--jobs` at a time,
   each one's output in `.dvc/tmp/repro_parallel/<stage>.log`, and records each finished run
   in dvc.lock with `dvc commit` (the same deps, params and outs `dvc repro` would record);
3. runs `dvc repro` for the rest (or for the given target stages), which finds the training
   runs up to date.

It is resumable as the stages are: a stopped run continues from its last checkpoint when this
runs again, and finished runs are not rerun. A failed run stops the tool (exit 1) after the
running ones end, naming the run and its log.

    python tools/repro_parallel.py --jobs 2            # in a DVC repository (tools/study.sh)
    python tools/repro_parallel.py --jobs 2 --dry      # list what would run
    python tools/repro_parallel.py --jobs 1 evaluate_inpainting   # only what it needs
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

# dvc.yaml's training stages (train_baseline, train_mex, ...; the G_I translators): none
# depends on another, so they may run side by side
TRAINING_PREFIXES = ("train_", "translator")


def dvc(*args: str, capture: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "dvc", *args]
    result = subprocess.run(command, text=True, capture_output=capture)
    if result.returncode:
        if capture:
            sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"error: `dvc {' '.join(args)}` failed (exit {result.returncode})")
    return result


def is_training(stage) -> bool:
    return getattr(stage, "name", "").startswith(TRAINING_PREFIXES)


def training_stages(graph, targets=()) -> tuple[list, list]:
    """The training stages that need no other training stage (those the `targets` depend on,
    when given), in dvc.yaml order, and the other stages they depend on directly (graph edges
    point from a stage to the stages it depends on)."""
    import networkx as nx
    wanted = set(graph.nodes)
    if targets:
        wanted = set()
        for stage in graph.nodes:
            if getattr(stage, "addressing", None) in targets:
                wanted |= {stage} | nx.descendants(graph, stage)
    # a training stage that needs another one's outputs is left to the final `dvc repro`
    training = [stage for stage in graph.nodes if stage in wanted and is_training(stage)
                and not any(is_training(needed) for needed in nx.descendants(graph, stage))]
    upstream = {dependency for stage in training for dependency in graph.successors(stage)
                if not is_training(dependency)}
    return training, sorted(upstream, key=lambda stage: stage.addressing)


def out_of_date(names: list[str]) -> list[str]:
    """The stages among `names` that `dvc status` reports as changed."""
    if not names:
        return []
    report = json.loads(dvc("status", "--json", *names, capture=True).stdout or "{}")
    return [name for name in names if name in report]


def say(line: str) -> None:
    """One line, written whole (the pool's threads print side by side)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run_all(commands: dict[str, str], jobs: int, log_dir: Path) -> list[str]:
    """Run each stage's command, `jobs` at a time; commit each finished one. After a failure no
    new run starts (the running ones finish). Returns the names of the failed runs."""
    log_dir.mkdir(parents=True, exist_ok=True)
    commit_lock, stop = threading.Lock(), threading.Event()
    failed: list[str] = []
    started = time.monotonic()

    def one(name: str) -> tuple[str, int | None, float]:
        if stop.is_set():
            return name, None, 0.0
        begin = time.monotonic()
        say(f"== start {name}")
        with open(log_dir / f"{name}.log", "w") as log:
            code = subprocess.run(commands[name], shell=True, stdout=log,
                                  stderr=subprocess.STDOUT).returncode
        if code:
            stop.set()
        else:
            with commit_lock:   # one `dvc commit` at a time: it takes the repository's lock
                dvc("commit", "--force", "--quiet", name)
        return name, code, time.monotonic() - begin

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, name) for name in commands]
        for done, future in enumerate(as_completed(futures), 1):
            name, code, seconds = future.result()
            if code is None:
                say(f"== [{done}/{len(commands)}] {name}: not started (a run failed)")
                continue
            state = "done" if code == 0 else f"FAILED (exit {code}, log {log_dir / name}.log)"
            say(f"== [{done}/{len(commands)}] {name}: {state} in {seconds / 60:.1f} min "
                f"({(time.monotonic() - started) / 60:.1f} min in all)")
            if code:
                failed.append(name)
    return failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="training runs at a time (default 2)")
    parser.add_argument("--dry", action="store_true", help="list what would run, run nothing")
    parser.add_argument("--log-dir", default=".dvc/tmp/repro_parallel",
                        help="where each run's output goes")
    parser.add_argument("targets", nargs="*", help="stages to reproduce (default: all)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs: {args.jobs} (at least 1)")
    from dvc.repo import Repo
    with Repo(".") as repo:
        known = {stage.addressing for stage in repo.index.graph.nodes}
        unknown = [target for target in args.targets if target not in known]
        if unknown:
            parser.error(f"unknown stage(s): {', '.join(unknown)}")
        training, upstream = training_stages(repo.index.graph, args.targets)
        commands = {stage.addressing: stage.cmd for stage in training}
    if args.dry:
        print("upstream:", " ".join(stage.addressing for stage in upstream) or "none")
        print("training:", " ".join(commands) or "none")
        return 0
    if upstream:
        dvc("repro", *(stage.addressing for stage in upstream))
    stale = out_of_date(list(commands))
    print(f"== {len(stale)} of {len(commands)} training runs to do, {args.jobs} at a time",
          flush=True)
    failed = run_all({name: commands[name] for name in stale}, args.jobs, Path(args.log_dir))
    if failed:
        print(f"error: training run(s) failed: {', '.join(failed)} (logs in {args.log_dir})",
              file=sys.stderr)
        return 1
    dvc("repro", *args.targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
