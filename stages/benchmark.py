"""Benchmark the training step of every row side by side (not a DVC stage; `make bench`).

  python -m stages.benchmark                            # demo and paper size, params.yaml
  python -m stages.benchmark --size demo                # demo size only (seconds)
  python -m stages.benchmark --reference ../pix2pixHD   # + NVIDIA's networks beside ours
  python -m stages.benchmark --set train.precision=bf16 --set train.channels_last=true
  python -m stages.benchmark --dataset facade           # GL vs GL+A-MEx (Table 3)
Writes reports/bench.{json,md} (on a GPU reports/bench_gpu.{json,md}; facade:
reports/bench_inpainting[_gpu].{json,md}). Each row runs in a fresh process; the first
2 steps are warm-up. Paper size: 256x128, ngf/ndf 64, 4 downsamplings, 9 blocks, α = β = 5;
on CPU with the native kernels unless --paper-kernels says otherwise (the demo size runs as
`make demo` trains: train.portable / MEXGAN_PORTABLE).
"""
import os

from pipeline.apps.bench_report import bench_markdown, inpainting_paper_size, paper_size
from pipeline.apps.benchmark import BASE_ROWS, CANVAS_ROW, benchmark, benchmark_inpainting
from pipeline.atomic import write_json_atomic, write_text_atomic
from pipeline.training.trainer import pick_device
from pipeline.config.loading import load_params
from pipeline.data.sets import PAPER_SETTINGS
from stages.common import ArgumentParser, run


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param for this run (as dvc exp run -S), repeatable")
    parser.add_argument("--dataset", default="cityscapes")
    parser.add_argument("--size", choices=("demo", "paper", "both"), default="both")
    parser.add_argument("--steps", type=int, default=12, help="steps per row at demo size")
    parser.add_argument("--paper-steps", type=int, default=4,
                        help="steps per row at paper size (CPU: ~3 s each)")
    parser.add_argument("--reference", metavar="PIX2PIXHD_CHECKOUT",
                        default=os.environ.get("PIX2PIXHD"),
                        help="a checkout of github.com/NVIDIA/pix2pixHD: its networks and "
                             "training step are timed beside ours at paper size, where the "
                             "target is (default: $PIX2PIXHD)")
    parser.add_argument("--rows", help="comma-separated rows to time (default: pix2pixhd, mex, "
                        f"amex, {CANVAS_ROW} (MExGAN with train.mex_crop_canvas on) and the "
                        "dataset's TwoSM rows; on CPU at paper size the TwoSM rows (batch 16 of "
                        f"256 crops, minutes per step) and {CANVAS_ROW} are left out)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="at paper size each row runs this many times, the rows taking "
                             "turns (a slow spell of a shared machine then falls on every row "
                             "alike)")
    parser.add_argument("--demo-rounds", type=int, default=1,
                        help="the same at demo size (its steps are short: more of them)")
    parser.add_argument("--paper-kernels", choices=("native", "portable", "params"),
                        default="native",
                        help="CPU kernels at paper size: native (oneDNN and the CPU's own ISA, "
                             "as the performance issue's reference timings; the default), "
                             "portable, or params (train.portable / MEXGAN_PORTABLE, as at demo "
                             "size, where the rows run as `make demo` trains them)")
    parser.add_argument("--out", help="output prefix (default reports/bench[_gpu])")
    args = parser.parse_args()
    for name in ("rounds", "demo_rounds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: need >= 1")
    for name in ("steps", "paper_steps"):
        if getattr(args, name) < 3:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(args, name)}: need >= 3 "
                             "(2 warm-up steps are left out)")
    if args.reference and not os.path.exists(os.path.join(args.reference, "models",
                                                          "networks.py")):
        raise FileNotFoundError(f"{args.reference}/models/networks.py does not exist: "
                                "--reference must be a checkout of NVIDIA/pix2pixHD")
    params = load_params(args.params, args.set)
    sizes = ("demo", "paper") if args.size == "both" else (args.size,)
    facade = args.dataset == params.inpainting.dataset
    if not facade and args.dataset not in params.datasets:
        raise ValueError(f"--dataset {args.dataset}: not in {args.params} datasets")
    results = {"overrides": args.set, "sizes": {}}
    for size in sizes:
        steps = args.steps if size == "demo" else args.paper_steps
        portable = None if size == "demo" or args.paper_kernels == "params" else \
            args.paper_kernels == "portable"
        rounds = args.demo_rounds if size == "demo" else args.rounds
        print(f"{args.dataset} at {size} size, {steps} steps per row:", flush=True)
        if facade:
            sized = inpainting_paper_size(params) if size == "paper" else params
            width, height = (PAPER_SETTINGS[args.dataset]["width"],
                             PAPER_SETTINGS[args.dataset]["height"]) if size == "paper" else \
                (params.inpainting.width, params.inpainting.height)
            results["sizes"][size] = benchmark_inpainting(
                sized, width=width, height=height, steps=steps,
                images=max(8, 2 * sized.inpainting.batch_size), progress=True,
                portable=portable, rounds=rounds)
        else:
            sized = paper_size(params) if size == "paper" else params
            rows = args.rows.split(",") if args.rows else None
            if rows is None and size == "paper" and \
                    pick_device(params.train.device).type == "cpu":
                rows = list(BASE_ROWS)
                print(f"  (at paper size on CPU the TwoSM rows and {CANVAS_ROW}, a GPU setting, "
                      "are left out; --rows names them)")
            width, height = (PAPER_SETTINGS[args.dataset]["width"],
                             PAPER_SETTINGS[args.dataset]["height"]) if size == "paper" else \
                (params.datasets[args.dataset].width, params.datasets[args.dataset].height)
            results["sizes"][size] = benchmark(sized, args.dataset, width=width, height=height,
                                               steps=steps, progress=True, losses=rows,
                                               reference=args.reference if size == "paper"
                                               else None, portable=portable,
                                               rounds=rounds)
    device = next(iter(results["sizes"].values()))["device"].split(":")[0]
    prefix = args.out or os.path.join(
        "reports", "bench" + ("_inpainting" if facade else "") + ("_gpu" if device == "cuda"
                                                                 else ""))
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    markdown = bench_markdown(results)
    write_json_atomic(f"{prefix}.json", results)
    write_text_atomic(f"{prefix}.md", markdown)
    print(markdown)
    print(f"-> {prefix}.json, {prefix}.md")


if __name__ == "__main__":
    run(main)
