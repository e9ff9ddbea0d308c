"""Benchmark the training step of Pix2PixHD, MExGAN, A-MExGAN and TwoSM side by side (not a DVC stage).

  python -m stages.benchmark                       # demo size from params.yaml
  python -m stages.benchmark --paper-size --steps 30   # 256x128, paper widths (GPU)
  python -m stages.benchmark --dataset facade      # GL vs GL+A-MEx (Table 3), params inpainting
Writes reports/benchmark_<device>.json (facade: reports/benchmark_inpainting_<device>.json).
"""
import argparse
import dataclasses
import json
import os

from pipeline.benchmark import benchmark, benchmark_inpainting
from pipeline.config import load_params
from pipeline.datasets import PAPER_SETTINGS
from stages.common import run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", default="cityscapes")
    parser.add_argument("--paper-size", action="store_true",
                        help="paper resolution and widths (ngf/ndf 64, 4 down, 9 blocks, α=β=5)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", help="default reports/benchmark_<device>.json")
    args = parser.parse_args()
    params = load_params(args.params)
    if args.dataset == params.inpainting.dataset:
        inpainting(params, args)
        return
    if args.dataset not in params.datasets:
        raise ValueError(f"datasets.{args.dataset}: not in {args.params}")
    size = params.datasets[args.dataset]
    width, height = size.width, size.height
    if args.paper_size:
        params = dataclasses.replace(
            params, alpha=5, beta=5,
            model=dataclasses.replace(params.model, ngf=64, ndf=64, n_downsampling=4,
                                      n_blocks=9),
            twosm=dataclasses.replace(params.twosm, crop_size=256, batch_size=16))
        width, height = PAPER_SETTINGS[args.dataset]["width"], \
            PAPER_SETTINGS[args.dataset]["height"]
    result = benchmark(params, args.dataset, width=width, height=height, steps=args.steps,
                       progress=True)
    out = args.out or f"reports/benchmark_{result['device'].split(':')[0]}.json"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    for loss, values in result["rows"].items():
        print(f"{loss:10s} {values['median_step_seconds'] * 1000:8.1f} ms/step "
              f"({values['step_time_vs_pix2pixhd']:.2f}x)")
    print(f"-> {out}")


def inpainting(params, args):
    ip = params.inpainting
    width, height = ip.width, ip.height
    if args.paper_size:  # 248x242, GL's widths, paper q = α = β = 4, the authors' batch 64
        params = dataclasses.replace(params, inpainting=dataclasses.replace(
            ip, ngf=64, ndf=64, dilations=(2, 4, 8, 16), global_layers=6, local_layers=5,
            q=4, alpha=4, beta=4, batch_size=64))
        width, height = PAPER_SETTINGS[ip.dataset]["width"], PAPER_SETTINGS[ip.dataset]["height"]
    result = benchmark_inpainting(params, width=width, height=height, steps=args.steps,
                                  images=max(8, 2 * params.inpainting.batch_size),
                                  progress=True)
    out = args.out or f"reports/benchmark_inpainting_{result['device'].split(':')[0]}.json"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    for loss, values in result["rows"].items():
        print(f"{loss:10s} {values['median_step_seconds'] * 1000:8.1f} ms/step "
              f"({values['step_time_vs_gl']:.2f}x)")
    print(f"-> {out}")


if __name__ == "__main__":
    run(main)
