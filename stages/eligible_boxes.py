"""Count the test images that have an eligible box, under both box rules, on real Cityscapes
instance maps, next to the authors' count (376 of the 500 val images at 256x128, 0.02).

  python -m stages.eligible_boxes --inst-dir data/raw/gtFine/val \
      --label "Cityscapes val" --out reports/real_eligible_boxes.json

Reads only the *_gtFine_instanceIds.png files (gtFine_trainvaltest.zip; no photos), resized
nearest to 256x128 as `prepare` does; the count is that of `prepare`'s test_boxes.csv on the same
images. The committed reports/real_eligible_boxes.json comes from the few real samples of
../shared/data (--inst-dir ../shared/data/cityscapes/train_inst), which are not the val set: the
376 comparison needs the full val folder. reports/datasets.md shows the file.
"""
import os

from pipeline.atomic import write_json_atomic
from pipeline.data.boxes import BOX_RULES, select_test_box
from pipeline.data.sets import AUTHORS_TEST_BOXES, PAPER_SETTINGS, get_spec
from stages.common import ArgumentParser, run


def count(inst_dir: str, label: str) -> dict:
    """{"rules": {rule: {"eligible_images", "boxes_per_class"}}, "images": N, ...}."""
    from pipeline.data.sets.cityscapes import read_cityscapes_instance_maps
    spec, settings = get_spec("cityscapes"), PAPER_SETTINGS["cityscapes"]
    names, maps = read_cityscapes_instance_maps(inst_dir)
    rules = {}
    for rule in BOX_RULES:
        chosen = [select_test_box(m, spec.edit_classes, settings["size_threshold"], rule)
                  for m in maps]
        per_class = {}
        for inst in chosen:
            if inst is not None:
                name = spec.label_names[inst.label]
                per_class[name] = per_class.get(name, 0) + 1
        rules[rule] = {"eligible_images": sum(inst is not None for inst in chosen),
                       "test_boxes_per_class": dict(sorted(per_class.items())),
                       "skipped_images": [n for n, inst in zip(names, chosen) if inst is None]}
    return {"dataset": "cityscapes", "images_from": label, "images": len(names),
            "size": f"{settings['width']}x{settings['height']}",
            "size_threshold": settings["size_threshold"], "rules": rules,
            "authors": AUTHORS_TEST_BOXES["cityscapes"]}


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inst-dir", required=True,
                        help="folder searched for *_gtFine_instanceIds.png (e.g. gtFine/val)")
    parser.add_argument("--label", help="what the images are, for the report (default: the "
                                        "folder)")
    parser.add_argument("--out", help="write the counts as JSON here")
    args = parser.parse_args()
    result = count(args.inst_dir, args.label or args.inst_dir)
    authors = result["authors"]
    for rule, counts in result["rules"].items():
        print(f"box rule {rule}: {counts['eligible_images']} of {result['images']} images have "
              f"an eligible box")
    print(f"the authors' code: {authors['test_boxes']} of {authors['test_images']} val images "
          f"({authors['size']})")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        write_json_atomic(args.out, result)


if __name__ == "__main__":
    run(main)
