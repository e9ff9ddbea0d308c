"""How much of the study fits the device time: every training run of the study (row x seed x
profile) started at once, as the real run starts them, each training its row on synthetic maps
for a few seconds of wall time; from their step rates under that load, the fraction of each
run's epochs that ends by the time budget (tools/gpu_study.sh then scales the study's epochs by
it: tools/gpu/params.py scale).

  python tools/gpu/calibrate.py --run PARAMS ... --budget SECONDS --out calibration.json
      [--window 12] [--warmup 3] [--ready-timeout 90] [--max-runs N]

--run: a params file with its `profile` set (one per study profile); each of its rows x seeds
becomes one measuring process. The processes meet at a barrier (all built, on the device),
then train for --window seconds; the steps of the first --warmup seconds are not counted.

The estimate per run: seconds = epochs x (steps per epoch / measured steps per second +
EPOCH_OVERHEAD) + START_OVERHEAD; the fraction is min(1, budget / the longest run's seconds).
A run that measured nothing counts as the slowest of the others; with no measurement at all the
fraction is null (the caller falls back). Writes the JSON and prints one summary line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

EPOCH_OVERHEAD = 1.5   # s per epoch a measurement leaves out: the held-back evaluation (16 test
                       # boxes), dvclive's files, the epoch's checkpoint (2 x ~29 MB)
MAX_STEPS = 4000       # steps planned for the window: more than a process can take in it
START_OVERHEAD = 20.0  # s from the stage's start to its first step (python, CUDA, data, model)


class _WindowOver(Exception):
    pass


class _Timer:
    """The trainer's `timer` hook: the time of every finished step; ends training after the
    window."""

    def __init__(self, end: float):
        self.end, self.stamps = end, []

    def start(self, name):
        pass

    def stop(self):
        pass

    def step_done(self):
        now = time.time()
        self.stamps.append(now)
        if now >= self.end:
            raise _WindowOver


def _build(params, row_name: str, seed: int):
    """(generator, losses, task) of a row as its kind builds them (pipeline.kinds), on
    synthetic maps generated here (the prepared data does not exist yet)."""
    from pipeline.data.sets import get_spec
    from pipeline.data.inputs import EditBox
    from pipeline.kinds import kind_of
    from pipeline.data.preparation import box_rows
    from pipeline.data.synthetic import generate_split
    kind = kind_of(params, row_name)
    row = kind.rows(params)[row_name]
    spec, data = get_spec(row.dataset), params.datasets[row.dataset]
    split = generate_split(row.dataset, "train", data.synthetic_train, data.height, data.width,
                           params.data.seed)
    boxes = {}
    for entry in box_rows("train", split, spec, params.row_threshold(row_name),
                          params.data.box_rule):
        boxes.setdefault(entry[1], []).append(EditBox(entry[1], entry[2], tuple(entry[3:7])))
    return kind.build(params, row, split, boxes, seed)


def worker(args) -> int:
    """One measuring process: build, meet the others at the barrier, train for the window."""
    from pipeline.training import platform   # before numpy and torch load: they read its settings
    portable, threads, _ = platform.portable_setting(platform.read_train_section(args.params))
    platform.configure(portable=portable, threads=threads)
    import torch
    from pipeline.config.loading import load_params
    params = load_params(args.params)
    from pipeline.training import trainer
    from pipeline.apps.step_timing import TimedTask
    from pipeline.training.runs import acceleration
    record = {"params": args.params, "profile": params.profile, "row": args.row,
              "seed": args.seed, "epochs": params.row_epochs(args.row)
              if hasattr(params, "row_epochs") else params.train.epochs}
    started = time.time()
    try:
        trainer.make_deterministic(args.seed, params.train.cpu_threads,
                                   params.train.deterministic)
        device = trainer.pick_device(params.train.device)
        generator, losses, task = _build(params, args.row, args.seed)
        record.update(steps_per_epoch=len(task), device=str(device),
                      setup_seconds=round(time.time() - started, 2))
        open(os.path.join(args.barrier, f"ready.{args.index}"), "w").close()
        go_file = os.path.join(args.barrier, "go")
        while not os.path.exists(go_file):
            time.sleep(0.05)
        with open(go_file) as f:
            go, window, warmup = (float(v) for v in f.read().split())
        timer = _Timer(go + window)
        t = params.train
        with tempfile.TemporaryDirectory() as out_dir:
            try:
                trainer.train(generator=generator, losses=losses, task=TimedTask(task, MAX_STEPS),
                              epochs=1, lr=t.lr, betas=(t.beta1, t.beta2), device=device,
                              out_dir=out_dir, progress=False, acceleration=acceleration(t),
                              timer=timer, log_every=t.log_every,
                              data_workers=t.data_workers)
            except _WindowOver:
                pass
        counted = [s for s in timer.stamps if s >= go + warmup]
        record.update(steps=len(timer.stamps), counted_steps=len(counted))
        if len(counted) >= 2:
            record["steps_per_second"] = (len(counted) - 1) / (counted[-1] - counted[0])
        if device.type == "cuda":
            record["gpu_memory_max_gb"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3)
    except Exception as err:  # noqa: BLE001 - a failed measurement is reported, not fatal
        record["error"] = f"{type(err).__name__}: {err}"
    with open(os.path.join(args.barrier, f"result.{args.index}.json"), "w") as f:
        json.dump(record, f)
    return 0


def estimate(records: list, budget: float) -> dict:
    """The fraction of every run's epochs that ends within `budget` seconds (see the module
    doc), and per run its estimated full-length seconds."""
    rates = [r["steps_per_second"] for r in records if r.get("steps_per_second")]
    if not rates:
        return {"fraction": None, "reason": "no run measured a step rate"}
    slowest = min(rates)
    per_run = []
    for r in records:
        rate = r.get("steps_per_second") or slowest
        spe = r.get("steps_per_epoch") or max(x.get("steps_per_epoch", 0) for x in records)
        seconds_per_epoch = spe / rate + EPOCH_OVERHEAD
        per_run.append({"profile": r.get("profile"), "row": r["row"], "seed": r["seed"],
                        "epochs": r["epochs"], "steps_per_epoch": spe,
                        "steps_per_second": round(rate, 2),
                        "measured": bool(r.get("steps_per_second")),
                        "full_seconds": round(r["epochs"] * seconds_per_epoch
                                              + START_OVERHEAD, 1)})
    longest = max(per_run, key=lambda x: x["full_seconds"])
    usable = max(budget - START_OVERHEAD, 1.0)
    fraction = min(1.0, usable / (longest["full_seconds"] - START_OVERHEAD))
    return {"fraction": round(fraction, 4), "budget_seconds": budget,
            "longest_run": longest, "runs": per_run,
            "aggregate_steps_per_second": round(sum(rates), 1),
            "median_steps_per_second": round(statistics.median(rates), 2)}


def coordinate(args) -> int:
    from pipeline.config.loading import load_params
    runs = []
    for path in args.run:
        params = load_params(path)
        runs += [(path, row, seed) for row in params.rows for seed in params.seeds]
    if args.max_runs:
        # one run per (params, row) first, so that every row kind is measured
        firsts = {}
        for run in runs:
            firsts.setdefault(run[:2], run)
        runs = (list(firsts.values()) + [x for x in runs if x not in firsts.values()])
        runs = runs[:args.max_runs]
    barrier = tempfile.mkdtemp(prefix="mexgan-calibrate-")
    began = time.time()
    processes = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker",
                                   "--params", path, "--row", row, "--seed", str(seed),
                                   "--index", str(i), "--barrier", barrier],
                                  cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=open(os.path.join(barrier, f"log.{i}"), "w"))
                 for i, (path, row, seed) in enumerate(runs)]

    def arrived(i: int) -> bool:   # built and waiting, failed before that, or gone
        return (os.path.exists(os.path.join(barrier, f"ready.{i}"))
                or os.path.exists(os.path.join(barrier, f"result.{i}.json"))
                or processes[i].poll() is not None)
    deadline = began + args.ready_timeout
    while time.time() < deadline and not all(arrived(i) for i in range(len(runs))):
        time.sleep(0.1)
    ready_seconds = time.time() - began
    go = time.time() + 0.2
    with open(os.path.join(barrier, "go.tmp"), "w") as f:
        f.write(f"{go} {args.window} {args.warmup}")
    os.replace(os.path.join(barrier, "go.tmp"), os.path.join(barrier, "go"))
    end = go + args.window + 30
    for process in processes:
        try:
            process.wait(timeout=max(0.1, end - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    records = []
    for i, (path, row, seed) in enumerate(runs):
        try:
            with open(os.path.join(barrier, f"result.{i}.json")) as f:
                records.append(json.load(f))
        except (OSError, ValueError):
            with open(os.path.join(barrier, f"log.{i}")) as f:
                tail = f.read()[-400:]
            records.append({"params": path, "row": row, "seed": seed, "epochs": 0,
                            "error": f"no result (exit {processes[i].returncode}): {tail}"})
    result = {"processes": len(runs), "window_seconds": args.window,
              "warmup_seconds": args.warmup, "ready_seconds": round(ready_seconds, 1),
              "wall_seconds": round(time.time() - began, 1),
              "epoch_overhead_seconds": EPOCH_OVERHEAD,
              "start_overhead_seconds": START_OVERHEAD,
              **estimate(records, args.budget), "records": records}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    shutil.rmtree(barrier, ignore_errors=True)
    errors = [r for r in records if "error" in r]
    print(f"calibration: {len(runs)} processes, ready after {ready_seconds:.0f} s, "
          f"{result.get('aggregate_steps_per_second', 0)} steps/s in all, fraction "
          f"{result['fraction']} of the epochs fits {args.budget:.0f} s"
          + (f"; {len(errors)} failed: {errors[0]['error'][:300]}" if errors else ""))
    return 0 if result["fraction"] is not None else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", default=[], help="a study params file")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds the training runs may take")
    parser.add_argument("--out", default="calibration.json")
    parser.add_argument("--window", type=float, default=12.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--ready-timeout", type=float, default=90.0)
    parser.add_argument("--max-runs", type=int, default=0, help="measure at most N runs")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--barrier", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if not args.run:
        parser.error("give at least one --run PARAMS")
    return coordinate(args)


if __name__ == "__main__":
    sys.exit(main())
