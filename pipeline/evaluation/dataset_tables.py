"""reports/datasets.md (the dataset_report stage): a section per prepared dataset (images per
split, eligible boxes per class, skipped images, next to the authors' count of real test images
with an eligible box), the eligible-image counts on real instance maps (stages.eligible_boxes)
and real and synthetic street maps side by side (stages.world_statistics)."""
from __future__ import annotations

from pipeline.data.sets import AUTHORS_TEST_BOXES


def datasets_markdown(stats: list, real_counts: dict | None = None,
                      world: dict | None = None) -> str:
    """The page: one section per dataset's prepared statistics (the prepare stage's
    stats.json), then the real counts and the street maps when given."""
    lines = ["# Prepared datasets", ""]
    for dataset in stats:
        lines += dataset_section(dataset)
    if real_counts is not None:
        lines += real_counts_section(real_counts)
    if world is not None:
        lines += world_section(world)
    return "\n".join(lines)


def dataset_section(stats: dict) -> list:
    """One prepared dataset (its stats.json): images and eligible boxes per split and class."""
    lines = [f"## {stats['dataset']} ({stats['source']}, {stats['width']}x{stats['height']}, "
             f"box threshold {stats['size_threshold']}, box rule {stats['box_rule']})", "",
             "| split | images | without an eligible box | eligible boxes |", "|---|---|---|---|"]
    for split in ("train", "test"):
        s = stats[split]
        lines.append(f"| {split} | {s['images']} | {s['images_without_eligible_box']} | "
                     f"{sum(s['eligible_boxes_per_class'].values())} |")
    classes = sorted(set(stats["train"]["eligible_boxes_per_class"])
                     | set(stats["test"]["eligible_boxes_per_class"]))
    lines += ["", "| class | train boxes | test boxes |", "|---|---|---|"]
    for name in classes:
        lines.append(f"| {name} | {stats['train']['eligible_boxes_per_class'].get(name, 0)} | "
                     f"{stats['test']['eligible_boxes_per_class'].get(name, 0)} |")
    skipped = stats["test"].get("skipped_images", [])
    lines += ["", f"Test boxes (seed {stats['test_box_seed']}): {stats['test']['test_boxes']} of "
              f"{stats['test']['images']} test images have an eligible box; skipped: "
              f"{len(skipped)}"
              + (f" ({', '.join(skipped[:10])}{', ...' if len(skipped) > 10 else ''})"
                 if skipped else "")]
    authors = AUTHORS_TEST_BOXES.get(stats["dataset"])
    if authors and stats["source"] == "real":
        lines.append(f"The authors' code: {authors['test_boxes']} of {authors['test_images']} "
                     f"({authors['size']}).")
    return lines + [""]


def real_counts_section(counts: dict) -> list:
    """The eligible-image counts of stages.eligible_boxes on real instance maps."""
    authors = counts["authors"]
    lines = [f"## Real {counts['dataset']}: test images with an eligible box", "",
             f"{counts['images_from']}: {counts['images']} images at {counts['size']}, "
             f"threshold {counts['size_threshold']}.", "",
             "| box rule | images with an eligible box | of | seed-679 boxes per class |",
             "|---|---|---|---|"]
    for rule, c in counts["rules"].items():
        classes = ", ".join(f"{k} {v}" for k, v in c["test_boxes_per_class"].items()) or "-"
        lines.append(f"| {rule} | {c['eligible_images']} | {counts['images']} | {classes} |")
    lines += ["", f"The authors' code: {authors['test_boxes']} of {authors['test_images']} val "
              f"images ({authors['size']}). The comparison needs the full val set: "
              "`python -m stages.eligible_boxes --inst-dir data/raw/gtFine/val --label "
              "\"Cityscapes val\" --out reports/real_eligible_boxes.json` (only gtFine is "
              "read), then `dvc repro dataset_report`.", ""]
    return lines


def _f(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def world_section(world: dict) -> list:
    """Real and synthetic street maps side by side (stages.world_statistics)."""
    worlds = [("real video", world["real_video"]), ("real gtFine", world["real_gtfine"]),
              ("synthetic", world["synthetic"])]
    lines = [f"## Synthetic and real street maps ({world['size']}, {world['box_rule']} box "
             f"rule, threshold {world['size_threshold']})", "",
             "`python -m stages.world_statistics` (pipeline/map_statistics.py). "
             + "; ".join(f"{name}: {w['source']}, {w['maps']} maps" for name, w in worlds)
             + ". Floors over every eligible box (pipeline.floors, tIOU).", "",
             "![synthetic maps](world/synthetic.png)", "",
             "(The real maps' picture is not committed: render it locally with "
             "`--real-picture /tmp/world_real.png`.)", "",
             "| | " + " | ".join(name for name, _ in worlds) + " |",
             "|---|" + "---|" * len(worlds)]
    def row(label, get):
        lines.append(f"| {label} | " + " | ".join(get(w) for _, w in worlds) + " |")
    row("eligible boxes (floors)", lambda w: str(w["floors"]["boxes"]))
    row("fill-box floor", lambda w: _f(w["floors"]["fill-box"]))
    row("mean-mask floor", lambda w: _f(w["floors"]["mean-mask"]))
    row("car fill-box / mean-mask", lambda w: "/".join(
        _f(w["floors"]["per_class"].get("car", {}).get(k)) for k in ("fill-box", "mean-mask")))
    for scope, key in (("eligible", "classes"), ("any size", "all_objects")):
        for name in ("car", "person", "bicycle", "rider", "motorcycle", "all"):
            def get(w, name=name, key=key, field=None):
                return w[key].get(name, {})
            row(f"{name} ({scope}): boxes per map", lambda w, g=get: _f(
                g(w).get("boxes_per_map"), 2))
            row(f"{name} ({scope}): fill / label fill", lambda w, g=get: "/".join(
                _f(g(w).get(k)) for k in ("fill", "label_fill")))
            row(f"{name} ({scope}): holds another object / same class / any thing pixel",
                lambda w, g=get: "/".join(_f(g(w).get(k), 2) for k in (
                    "holds_other", "holds_same_class", "holds_thing")))
            row(f"{name} ({scope}): truncated / height / aspect", lambda w, g=get: "/".join(
                _f(g(w).get(k), 2) for k in ("truncated", "height", "aspect")))
    lines += ["", "Car boxes by the box bottom's row (y2 / H): count, mean height (of H), "
              "aspect (w / h), eligible boxes:", "",
              "| bottom | " + " | ".join(name for name, _ in worlds) + " |",
              "|---|" + "---|" * len(worlds)]
    bins = world["synthetic"]["classes"].get("car", {}).get("by_position", [])
    for index, b in enumerate(bins):
        cells = []
        for _, w in worlds:
            p = w["classes"].get("car", {}).get("by_position", [{}] * len(bins))[index]
            cells.append(f"{p.get('boxes', 0)}, {_f(p.get('height'), 2)}, "
                         f"{_f(p.get('aspect'), 2)}")
        lines.append(f"| {b['bottom_from']:.1f}-{b['bottom_to']:.1f} | " + " | ".join(cells)
                     + " |")
    lines += ["", "Stuff layout: share of each band of rows (8 bands, top first):", "",
              "| class | " + " | ".join(name for name, _ in worlds) + " |",
              "|---|" + "---|" * len(worlds)]
    for name in world["synthetic"]["stuff"]:
        lines.append(f"| {name} | " + " | ".join(
            " ".join(f"{v:.2f}" for v in w["stuff"][name]["bands"]) for _, w in worlds) + " |")
    return lines + [""]
