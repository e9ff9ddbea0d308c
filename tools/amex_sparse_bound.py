"""The most an exact sparse evaluation of A-MEx's discriminator could save (issue 14's A-MEx
target at paper size on CPU), written to reports/amex_sparse_bound.json:

  python -m tools.amex_sparse_bound [--images 40] [--out reports/amex_sparse_bound.json]

A-MEx's PatchGAN D_E scores (condition, image) x M^E_j: full-size maps that are zero outside the
expanded box. Away from the box and from the image border, each layer's output is one constant
per channel (the response to the zero background); a sparse evaluation could skip those
positions and count them into the instance-norm statistics and the score mean analytically, but
it must compute every position that the box reaches through the receptive field, and -- from
the second layer on, where the background is no longer zero -- every position that reads the
zero padding. Per layer this counts those positions (4x4 kernels, padding 2, the strides of the
paper-size PatchGAN), weights them by the layer's multiply-adds per position, and reports the
share of the discriminator's multiply-adds that cannot be skipped, over the benchmark's
synthetic Cityscapes boxes (256x128, authors' box rule, j = 0..q, α = β = 5).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def reached_positions(active: np.ndarray, stride: int, padding_differs: bool,
                      kernel: int = 4, padding: int = 2) -> np.ndarray:
    """The output positions of a convolution (kernel, stride, padding) that read an active input
    position, or the padding when `padding_differs` (the background is not zero there)."""
    height, width = active.shape
    padded = np.pad(active, padding, constant_values=padding_differs)
    out_h = (height + 2 * padding - kernel) // stride + 1
    out_w = (width + 2 * padding - kernel) // stride + 1
    reached = np.zeros((out_h, out_w), bool)
    for dy in range(kernel):
        for dx in range(kernel):
            reached |= padded[dy:dy + stride * (out_h - 1) + 1:stride,
                              dx:dx + stride * (out_w - 1) + 1:stride]
    return reached


def unskippable_share(box, height: int, width: int, layers) -> tuple:
    """For a map that is zero outside `box` (x1, y1, x2, y2): the share of the discriminator's
    multiply-adds at positions a sparse evaluation must compute, and each layer's share of
    positions. `layers`: (multiply-adds per output position, stride) per convolution."""
    x1, y1, x2, y2 = box
    active = np.zeros((height, width), bool)
    active[y1:y2, x1:x2] = True
    needed = total = 0.0
    shares = []
    for index, (macs, stride) in enumerate(layers):
        active = reached_positions(active, stride, padding_differs=index > 0)
        needed += active.sum() * macs
        total += active.size * macs
        shares.append(float(active.mean()))
    return needed / total, shares


def main(argv=None) -> None:
    from pipeline.apps.bench_report import paper_size
    from pipeline.data.boxes import expand_box
    from pipeline.config.loading import load_params
    from pipeline.data.sets import PAPER_SETTINGS, get_spec
    from pipeline.data.inputs import condition_channels
    from pipeline.models.networks import PatchDiscriminator
    from pipeline.data.preparation import box_rows
    from pipeline.atomic import write_json_atomic
    from pipeline.data.synthetic import generate_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="synthetic training images")
    parser.add_argument("--out", default="reports/amex_sparse_bound.json")
    args = parser.parse_args(argv)
    params = paper_size(load_params("params.yaml"))
    width, height = PAPER_SETTINGS["cityscapes"]["width"], PAPER_SETTINGS["cityscapes"]["height"]
    spec = get_spec("cityscapes")
    discriminator = PatchDiscriminator(condition_channels(spec) + 3, params.model.ndf,
                                       params.model.n_layers_d)
    convs = [block[0] for block in discriminator.blocks]
    layers = [(conv.in_channels * conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1],
               conv.stride[0]) for conv in convs]
    split = generate_split("cityscapes", "train", args.images, height, width, params.data.seed)
    boxes = [tuple(row[3:7]) for row in box_rows(
        "train", split, spec, params.datasets["cityscapes"].size_threshold, params.data.box_rule)]
    if not boxes:
        raise SystemExit("error: no eligible boxes in the synthetic images")
    shares, layer_shares = [], []
    for box in boxes:
        for j in range(params.q + 1):
            share, per_layer = unskippable_share(
                expand_box(box, j, params.alpha, params.beta, width, height), height, width,
                layers)
            shares.append(share)
            layer_shares.append(per_layer)
    result = {
        "what": "share of A-MEx's PatchGAN multiply-adds (forward) that an exact sparse "
                "evaluation must still compute: positions reached by the expanded box or, "
                "after the first layer, by the zero padding",
        "size": f"{width}x{height}", "q": params.q, "alpha": params.alpha, "beta": params.beta,
        "boxes": len(boxes), "maps": len(shares),
        "box_area_fraction_median": float(np.median([(x2 - x1) * (y2 - y1) / (width * height)
                                                     for x1, y1, x2, y2 in boxes])),
        "unskippable_share_mean": float(np.mean(shares)),
        "unskippable_share_median": float(np.median(shares)),
        "unskippable_share_min": float(np.min(shares)),
        "position_share_per_layer_mean": [round(float(v), 3)
                                          for v in np.mean(layer_shares, axis=0)],
        "layer_macs_per_position": [macs for macs, _ in layers]}
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
