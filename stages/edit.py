"""Edit your own segmentation map: redraw boxes with target labels using a trained row.

  python -m stages.edit mexgan-cityscapes my_labelIds.png --edit 40,60,90,100 car --out edited/
  python -m stages.edit path/to/generator.pt map_colour.png --edit 10,4,30,20 26 \\
      --edit 0,0,8,8 person --instances my_instanceIds.png
  python -m stages.edit mexgan-cityscapes --info          # the model's dataset, size, labels

MODEL is a row of params.yaml (its artifacts/models/<row>/seed<first seed>/generator.pt) or a
model file. MAP is a PNG of label ids (8- or 16-bit greyscale) or a colour map in the dataset's
palette (RGB, exact colours). Boxes are x1,y1,x2,y2 in MAP's own pixels (x2, y2 exclusive);
several --edit apply in order. Writes to --out: labels.png (ids), colour.png, photo.png (the
dataset's G_I, when there is one) and side_by_side.png (input | incomplete | edited | photo),
plus edit.json; all or nothing (temp files, then renamed). Errors: one line, exit status 1.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time

from pipeline.atomic import fsync_file, move_into_place
from stages.common import ArgumentParser, run

OUTPUTS = ("labels.png", "colour.png", "photo.png", "side_by_side.png", "edit.json")


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="python -m stages.edit", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Maps of any size work: the model runs at its training size (nearest-neighbour "
               "resize, labels pasted back into the boxes only). See README, 'Editing your own "
               "map'.")
    parser.add_argument("model", help="row name of params.yaml, or a model file (generator.pt)")
    parser.add_argument("map", nargs="?", help="label map: PNG of label ids, or a colour map in "
                        "the dataset palette")
    parser.add_argument("--edit", nargs=2, action="append", default=[],
                        metavar=("X1,Y1,X2,Y2", "LABEL"),
                        help="box in the map's pixels (half-open) and target label (name or "
                        "id); repeat to apply several edits in order")
    parser.add_argument("--instances", help="instance-id PNG of the map (e.g. Cityscapes "
                        "*_instanceIds.png); default: the label map (edges = label boundaries)")
    parser.add_argument("--translator", help="G_I model file, or 'none' (default: "
                        "translator-<dataset> next to the model)")
    parser.add_argument("--out", default="edited", help="output folder (default: %(default)s)")
    parser.add_argument("--params", default="params.yaml", help="params file naming the rows")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--panel-width", type=int, default=1024,
                        help="largest width of one panel of side_by_side.png (default: "
                        "%(default)s; small maps are enlarged to 128 px high)")
    parser.add_argument("--info", action="store_true",
                        help="print the model's metadata and label names, and exit")
    args = parser.parse_args(argv)
    if args.panel_width < 16:
        parser.error(f"--panel-width {args.panel_width}: must be at least 16")
    return args


def png_bytes(array, mode=None) -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def write_all(out_dir: str, files: dict) -> None:
    """Write {name: bytes} into out_dir all or nothing: temp files first, renamed when every one
    is complete; earlier outputs of this command that this run does not write are removed."""
    created = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    temps = {}
    try:
        for name, data in files.items():
            temps[name] = os.path.join(out_dir, f".{name}.tmp.{os.getpid()}")
            with open(temps[name], "wb") as f:
                f.write(data)
            fsync_file(temps[name])   # every file on disk before the first rename
        for name, tmp in temps.items():
            move_into_place(tmp, os.path.join(out_dir, name))
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.remove(tmp)
        if created and not os.listdir(out_dir):
            os.rmdir(out_dir)
        raise
    for name in OUTPUTS:
        if name not in files and os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    from pipeline.apps.editing import Edit, EditError, load_editor, parse_box
    from pipeline.apps.editing_maps import read_instance_map, read_label_map, side_by_side
    start = time.perf_counter()
    editor = load_editor(args.model, params_path=args.params, translator=args.translator,
                         device=args.device)
    if args.info:
        print(editor.describe())
        print("labels: " + ", ".join(f"{i} {n}" for i, n in enumerate(editor.label_names)
                                     if not n.startswith("nyu_class_")))
        return
    if not args.map:
        raise EditError("no label map given (MAP; see --help)")
    if not args.edit:
        raise EditError("no --edit given (--edit X1,Y1,X2,Y2 LABEL; see --help)")
    edits = [Edit(parse_box(box), label) for box, label in args.edit]
    labels = read_label_map(args.map, editor)
    instances = read_instance_map(args.instances) if args.instances else None
    result = editor.apply(labels, edits, instances)
    boxes = [tuple(e.box) for e in edits]
    ids = result.labels.astype(np.uint8 if editor.num_labels <= 256 else np.uint16)
    files = {"labels.png": png_bytes(ids),
             "colour.png": png_bytes(result.colour),
             "side_by_side.png": png_bytes(side_by_side(editor.palette[labels], result, boxes,
                                                         max_width=args.panel_width))}
    if result.photo is not None:
        files["photo.png"] = png_bytes(result.photo)
    seconds = time.perf_counter() - start
    height, width = labels.shape
    record = {"model": os.path.abspath(editor.model_path), "row": editor.row,
              "dataset": editor.dataset, "params_hash": editor.meta["params_hash"],
              "commit": editor.meta["commit"], "model_size": [editor.width, editor.height],
              "translator": editor.translator_path and os.path.abspath(editor.translator_path),
              "map": os.path.abspath(args.map), "map_size": [width, height],
              "instances": args.instances and os.path.abspath(args.instances),
              "edits": [{"box": list(box), "label": editor.label_id(e.label),
                         "label_name": editor.label_names[editor.label_id(e.label)]}
                        for box, e in zip(boxes, edits)],
              "changed_pixels": int((result.labels != labels).sum()),
              "seconds": round(seconds, 3)}
    files["edit.json"] = (json.dumps(record, indent=2) + "\n").encode()
    write_all(args.out, files)
    photo = "" if result.photo is not None else f"; no photo ({editor.translator_note})"
    print(f"{len(edits)} edit(s) of {args.map} ({width}x{height}) with {editor.row} "
          f"({editor.width}x{editor.height}) in {seconds:.2f} s -> {args.out}/{photo}")


if __name__ == "__main__":
    run(main)
