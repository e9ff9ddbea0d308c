"""Prepare one dataset: synthetic or the real archives (params data.source, data.sources).

The source of a dataset is data.sources.<dataset> where given, else data.source.

  dvc:      python -m stages.prepare cityscapes --out artifacts/data/cityscapes
            python -m stages.prepare facade --out artifacts/data/facade   (params `inpainting`)
  outside:  python -m stages.prepare cityscapes --raw data/raw --out /tmp/cityscapes
            (real data at the paper's size and threshold; the box rule is --params' data.box_rule,
            the default `authors` without a params file;
            writes boxes.csv, test_boxes.csv, train/test.h5; facade also test_masks.csv, the 20
            seed-679 holes per test image). Prints how many test images have an eligible box
            (the authors' code: 376 of the 500 Cityscapes val images).
"""

import os

from pipeline.config.loading import load_params
from pipeline.config.sections import DataParams
from pipeline.data.preparation import prepare_dataset
from pipeline.data.sets import AUTHORS_TEST_BOXES, PAPER_SETTINGS, get_dataset
from stages.common import ArgumentParser, run


EXTRACT_NOTE = ("Archives of the raw-data folder, extracted here by the prepare stage (real data "
                "only; the raw folder that data.dvc tracks is never written).\n")


def make_extract_dir(path: str) -> str:
    """The extraction folder of the DVC stage, with a note: a DVC output must exist, also when
    the synthetic default extracts nothing (load_raw creates it when it extracts)."""
    os.makedirs(path, exist_ok=True)
    note = os.path.join(path, "README.txt")
    if not os.path.isfile(note):
        with open(note, "w") as f:
            f.write(EXTRACT_NOTE)
    return path


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(PAPER_SETTINGS))
    parser.add_argument("--out", required=True, help="prepared dataset directory")
    parser.add_argument("--raw", help="raw folder (real data at the paper's size; of --params "
                        "only data.box_rule is read, when the file exists)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--extract", help="folder the raw archives are extracted into (the "
                        "pipeline: artifacts/raw/<dataset>; default: beside --out), so the raw "
                        "folder is only read")
    args = parser.parse_args()
    extract_dir = args.extract or args.out.rstrip("/") + ".extracted"
    holes = {}
    if args.raw and not os.path.exists(args.params):  # outside a project: the default rule
        box_rule = DataParams.box_rule
    else:
        params = load_params(args.params)
        box_rule = params.data.box_rule
    if args.raw:
        from pipeline.data.raw_datasets import load_raw
        settings = PAPER_SETTINGS[args.dataset]
        splits, source, seed = load_raw(args.dataset, args.raw,
                                        extract_dir=extract_dir), \
            "real", 679
    else:
        ip = params.inpainting
        if args.dataset == ip.dataset:  # inpainting (Table 3): its own section, no boxes
            settings = {"width": ip.width, "height": ip.height,
                        "size_threshold": PAPER_SETTINGS[ip.dataset]["size_threshold"],
                        "synthetic_train": ip.synthetic_train,
                        "synthetic_test": ip.synthetic_test}
            holes = {"hole": (ip.hole_min, ip.hole_max), "hole_repeats": ip.test_holes}
        elif args.dataset not in params.datasets:
            raise ValueError(f"datasets.{args.dataset}: not in {args.params}")
        else:
            settings = vars(params.datasets[args.dataset])
        source, seed = params.data.source_of(args.dataset), params.evaluate.seed
        if source == "real":
            from pipeline.data.raw_datasets import load_raw
            from pipeline.data.raw_files import MissingRawData
            try:
                options = {key: getattr(params.data, key)   # e.g. Cityscapes' val_sequences
                           for key in get_dataset(args.dataset).data_options}
                splits = load_raw(args.dataset, params.data.raw_dir,
                                  extract_dir=extract_dir, **options)
            except MissingRawData as err:  # one line: which archive, where, or go synthetic
                raise MissingRawData(f"{err}; or use synthetic {args.dataset} data: "
                                     f"data.sources: {{{args.dataset}: synthetic}} in "
                                     f"{args.params}") from None
        else:
            from pipeline.data.synthetic import generate_split
            splits = {split: generate_split(args.dataset, split, settings[f"synthetic_{split}"],
                                            settings["height"], settings["width"],
                                            params.data.seed)
                      for split in ("train", "test")}
    stats = prepare_dataset(args.dataset, splits, args.out, width=settings["width"],
                            height=settings["height"], threshold=settings["size_threshold"],
                            box_rule=box_rule, seed=seed, source=source,
                            list_threshold=settings.get("box_list_threshold") or None,
                            **holes)
    if args.extract:  # a DVC output: it exists, also when nothing was extracted
        make_extract_dir(args.extract)
    test = stats["test"]
    if "test_masks" in test:
        targets = f"{test['test_masks']} test holes"
    else:
        targets = (f"{test['test_boxes']} test boxes: {test['test_boxes']} of {test['images']} "
                   f"test images have an eligible box (box rule {box_rule})")
        if source == "real" and args.dataset in AUTHORS_TEST_BOXES:
            reference = AUTHORS_TEST_BOXES[args.dataset]
            targets += (f"; the authors' code: {reference['test_boxes']} of "
                        f"{reference['test_images']} at {reference['size']}")
    print(f"{args.dataset}: {stats['train']['images']} train / {stats['test']['images']} test "
          f"images, {targets} -> {args.out}")


if __name__ == "__main__":
    run(main)
