"""The perceptual stand-in's effect on the learning curves: one row trained with the random-init
VGG19 stand-in (loss.without_vgg_weights: standin) and without L_perc (drop), same seeds, same
data, same schedule, side by side in one run of this tool.

  .venv/bin/python tools/perceptual_effect.py [--params params_study.yaml] [--epochs 5]
      [--seeds 0 1 2] [--row mexgan-cityscapes] [--out reports/perceptual_standin]

Writes OUT.json (per mode and seed: held-back tIOU / hamm curves, train seconds, seconds per
step), OUT.md (final held-back tIOU per mode, the paired drop - standin difference per seed,
the step-time ratio) and OUT.png (tIOU against steps and against training seconds).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.config.loading import load_params  # noqa: E402
from pipeline.evaluation.reports.curves import read_curves  # noqa: E402
from pipeline.kinds import train_row  # noqa: E402

MODES = ("standin", "drop")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params_study.yaml")
    parser.add_argument("--row", default="mexgan-cityscapes")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=85)
    parser.add_argument("--out", default="reports/perceptual_standin")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite OUT.md and OUT.png from an existing OUT.json")
    args = parser.parse_args()
    if args.render:
        with open(args.out + ".json") as f:
            record = json.load(f)
        record["results"] = {mode: {int(s): run for s, run in runs.items()}
                             for mode, runs in record["results"].items()}
        _plot(record["results"], args.out + ".png", record["row"])
        with open(args.out + ".md", "w") as f:
            f.write(_markdown(record))
        print(open(args.out + ".md").read())
        return
    results = {mode: {} for mode in MODES}
    with tempfile.TemporaryDirectory() as work:
        data = os.path.join(work, "data")
        subprocess.run([sys.executable, "-m", "stages.prepare", "cityscapes", "--out", data,
                        "--params", args.params, "--extract", os.path.join(work, "raw")],
                       check=True)
        for seed in args.seeds:
            for mode in MODES:  # the two modes take turns: a slow spell hits both alike
                params = load_params(args.params, [
                    f"loss.without_vgg_weights={mode}", f"train.epochs={args.epochs}",
                    f"train.eval_every={args.eval_every}", f"seeds=[{seed}]"])
                run = os.path.join(work, f"{mode}-{seed}")
                summary = train_row(params, args.row, data, os.path.join(run, "model"),
                                    os.path.join(run, "live"), progress=False, seed=seed)
                curves = {name[len("eval/"):]: [list(map(float, steps)), list(map(float, v))]
                          for name, (steps, v) in read_curves(os.path.join(run, "live")).items()
                          if name.startswith("eval/")}
                results[mode][seed] = {"curves": curves, "steps": summary["steps"],
                                       "train_seconds": summary["train_seconds"],
                                       "vgg_source": summary["vgg_source"]}
                print(f"{mode} seed {seed}: final held-back tIOU "
                      f"{curves['tiou'][1][-1]:.4f}, {summary['train_seconds']:.0f} s",
                      flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    record = {"row": args.row, "params": args.params, "epochs": args.epochs, "out": args.out,
              "seeds": args.seeds, "results": results}
    with open(args.out + ".json", "w") as f:
        json.dump(record, f, indent=1)
    _plot(results, args.out + ".png", args.row)
    with open(args.out + ".md", "w") as f:
        f.write(_markdown(record))
    print(open(args.out + ".md").read())


def _plot(results, path, row):
    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, colour in zip(MODES, ("tab:red", "tab:blue")):
        for seed, run in results[mode].items():
            steps, values = run["curves"]["tiou"]
            seconds = np.array(steps) * run["train_seconds"] / run["steps"]
            label = f"{mode}" if seed == next(iter(results[mode])) else None
            by_step.plot(steps, values, color=colour, alpha=0.7, label=label)
            by_time.plot(seconds, values, color=colour, alpha=0.7, label=label)
    by_step.set(xlabel="step", ylabel="held-back tIOU", title=f"{row}: per step")
    by_time.set(xlabel="training seconds (1 thread)", title="per second of training")
    by_step.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _markdown(record) -> str:
    results = record["results"]
    seeds = record["seeds"]
    final = {mode: np.array([results[mode][s]["curves"]["tiou"][1][-1] for s in seeds])
             for mode in MODES}
    per_step = {mode: np.array([results[mode][s]["train_seconds"] / results[mode][s]["steps"]
                                for s in seeds]) for mode in MODES}
    ratios = per_step["drop"] / per_step["standin"]
    difference = final["drop"] - final["standin"]
    name = os.path.basename(record.get("out", "perceptual_standin"))
    lines = [
        "# The perceptual stand-in's effect (tools/perceptual_effect.py)", "",
        f"{record['row']}, {record['epochs']} epochs, seeds {seeds}, params "
        f"`{record['params']}`; the two modes take turns on the same machine. tIOU on the "
        "held-back test boxes (train.eval_boxes) at the end of training.", "",
        "| mode | what L_perc is | final held-back tIOU per seed | mean | ms per step, per seed |",
        "|---|---|---|---|---|"]
    for mode in MODES:
        source = results[mode][seeds[0]]["vgg_source"]
        lines.append(f"| {mode} | {source} | "
                     f"{', '.join(f'{v:.4f}' for v in final[mode])} | {final[mode].mean():.4f} | "
                     f"{', '.join(f'{1000 * v:.0f}' for v in per_step[mode])} |")
    lines += ["", f"drop − standin, paired by seed: {', '.join(f'{d:+.4f}' for d in difference)} "
              f"(mean {difference.mean():+.4f}); step time drop / standin per seed: "
              f"{', '.join(f'{r:.2f}' for r in ratios)} (median {np.median(ratios):.2f}; "
              "the machine's other work slows some runs more than others: the median is the "
              "ratio to read).", "",
              f"![tIOU curves]({name}.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
