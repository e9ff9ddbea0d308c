"""Measure the real Cityscapes maps at hand and the synthetic street world the same way
(pipeline.evaluation.map_statistics, tight box rule, 256x128) -> reports/world_statistics.json, the
synthetic picture reports/world/synthetic.png and the generator's timing
reports/synthetic_bench.json; `python -m stages.dataset_report` shows them side by side in
reports/datasets.md.

  python -m stages.world_statistics --video ../shared/data/cityscapes_video \
      --gtfine ../shared/data/cityscapes [--real-picture /tmp/world_real.png]

Not a DVC stage: it needs ../shared (like stages.eligible_boxes). The real picture is derived
from Cityscapes data: it is written only where --real-picture says, never into the repo.
"""
import os
import platform
import time

import numpy as np

from pipeline.atomic import write_json_atomic
from pipeline.data.sets import get_spec
from pipeline.evaluation import map_statistics as ms
from stages.common import ArgumentParser, run

WIDTH, HEIGHT, THRESHOLD, RULE = 256, 128, 0.02, "tight"


def picture(labels, path, count=4):
    """A 2-column grid of colour label maps (the first `count` maps), PNG."""
    from PIL import Image
    palette = get_spec("cityscapes").palette
    tiles = [palette[m] for m in labels[:count]]
    rows = [np.concatenate(tiles[i:i + 2], axis=1) for i in range(0, len(tiles) - 1, 2)]
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def measure_real(root, label):
    names, label_paths, instance_paths, groups = ms.find_frames(root)
    labels, instances = ms.read_maps(label_paths, instance_paths, WIDTH, HEIGHT)
    spec = get_spec("cityscapes")
    stats = ms.world_statistics(labels, instances, groups, spec.edit_classes, THRESHOLD, RULE)
    stats["all_objects"] = ms.class_summary(
        ms.box_table(labels, instances, spec.edit_classes, 0.0, RULE), len(labels), HEIGHT,
        WIDTH)
    stats["source"] = f"{label}: {len(set(groups))} groups (mean masks leave one out)"
    return stats, labels


def measure_synthetic(train, test, seed):
    from pipeline.data.synthetic import generate_split
    start, cpu = time.perf_counter(), time.process_time()
    splits = [generate_split("cityscapes", split, count, HEIGHT, WIDTH, seed)
              for split, count in (("train", train), ("test", test))]
    bench = {"maps": train + test, "size": f"{WIDTH}x{HEIGHT}",
             "wall_s": round(time.perf_counter() - start, 2),
             "cpu_s": round(time.process_time() - cpu, 2), "threads": 1,
             "machine": platform.platform(), "limit_s": 30}
    labels = np.concatenate([s.labels for s in splits])
    instances = np.concatenate([s.instances for s in splits])
    groups = ["train"] * train + ["test"] * test
    spec = get_spec("cityscapes")
    stats = ms.world_statistics(labels, instances, groups, spec.edit_classes, THRESHOLD, RULE,
                                scored_groups=["test"])
    stats["all_objects"] = ms.class_summary(
        ms.box_table(labels, instances, spec.edit_classes, 0.0, RULE), len(labels), HEIGHT,
        WIDTH)
    stats["source"] = (f"pipeline.synthetic seed {seed}: {train} train + {test} test maps "
                       "(mean masks from train, floors on test)")
    return stats, labels, bench


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default="../shared/data/cityscapes_video")
    parser.add_argument("--gtfine", default="../shared/data/cityscapes")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="reports/world_statistics.json")
    parser.add_argument("--picture", default="reports/world/synthetic.png")
    parser.add_argument("--bench", default="reports/synthetic_bench.json")
    parser.add_argument("--real-picture", help="where to render real maps (never the repo)")
    args = parser.parse_args()
    synthetic, synthetic_labels, bench = measure_synthetic(args.train, args.test, args.seed)
    video, video_labels = measure_real(args.video, "cityscapes_video (pseudo-labels)")
    gtfine, _ = measure_real(args.gtfine, "cityscapes gtFine")
    result = {"size": f"{WIDTH}x{HEIGHT}", "box_rule": RULE, "size_threshold": THRESHOLD,
              "real_video": video, "real_gtfine": gtfine, "synthetic": synthetic}
    write_json_atomic(args.out, result)
    write_json_atomic(args.bench, bench)
    picture(synthetic_labels[args.train:], args.picture)
    if args.real_picture:
        picture(video_labels[::45], args.real_picture)
    print(f"synthetic: {bench['maps']} maps in {bench['cpu_s']} s CPU; "
          f"floors fill-box {synthetic['floors']['fill-box']:.3f} / mean-mask "
          f"{synthetic['floors']['mean-mask']:.3f}; video {video['floors']['fill-box']:.3f} / "
          f"{video['floors']['mean-mask']:.3f}")


if __name__ == "__main__":
    run(main)
