"""The benchmark at the paper's sizes and its Markdown report (reports/bench*.md): step times
against the targets of issue 14 and NVIDIA's reference."""
from __future__ import annotations

import dataclasses

from pipeline.config.sections import Params
from pipeline.data.sets import get_dataset
from pipeline.apps.benchmark import CANVAS_ROW, step_ratios


def paper_size(params: Params) -> Params:
    """The paper's networks (ngf/ndf 64, 4 downsamplings, 9 blocks), α = β = 5 and the TwoSM
    paper batch / crops; the map size is the caller's (PAPER_SETTINGS)."""
    return dataclasses.replace(
        params, alpha=5, beta=5,
        model=dataclasses.replace(params.model, ngf=64, ndf=64, n_downsampling=4, n_blocks=9),
        twosm=dataclasses.replace(params.twosm, crop_size=256, batch_size=16))


def inpainting_paper_size(params: Params) -> Params:
    """GL's widths, the paper's q = α = β = 4 and the authors' batch 64."""
    return dataclasses.replace(params, inpainting=dataclasses.replace(
        params.inpainting, ngf=64, ndf=64, dilations=(2, 4, 8, 16), global_layers=6,
        local_layers=5, q=4, alpha=4, beta=4, batch_size=64))


TARGETS = {"mex": 1.25, "amex": 1.35, CANVAS_ROW: 1.25}  # step time vs our Pix2PixHD (issue 14)


REFERENCE_TARGET = 0.8                 # our Pix2PixHD step vs NVIDIA's, same run


def _measured(result: dict) -> str:
    rounds = result.get("rounds", 1)
    steps = f"{result['steps'] - result['warmup_steps']} steps after {result['warmup_steps']} " \
        "warm-up"
    return f"{steps} in each of {rounds} rounds (the rows taking turns)" if rounds > 1 else steps


def _number(value, spec: str = ".2f") -> str:
    return "" if value is None else format(value, spec)


def _memory_cells(values: dict) -> str:
    for key in ("mem_gpu_step_peak", "mem_cpu_step_peak_rss"):
        if f"{key}_mean_gb" in values:
            return f"{values[f'{key}_mean_gb']:.2f} / {values[f'{key}_max_gb']:.2f}"
    return f"{values['mem_cpu_peak_rss_gb']:.2f} (process peak)" \
        if "mem_cpu_peak_rss_gb" in values else "–"


def bench_markdown(results: dict) -> str:
    """The benchmark as Markdown: per size, a table of rows (step time, ratios, per-step peak
    memory), the targets met or not, and the breakdown of each row's step."""
    lines = ["# Training-step benchmark (`make bench`)", ""]
    for size, result in results["sizes"].items():
        rows = result["rows"]
        base_name = next((name for name in ("pix2pixhd", "gl") if name in rows), None)
        gpu = result.get("gpu")
        memory = "GPU allocator, per-step peak" if gpu else "process RSS, per-step peak"
        kernels = "portable" if result.get("portable") else "native"
        lines += [f"## {result['dataset']} {result['width']}×{result['height']} ({size} size)",
                  "",
                  f"Device: {gpu or 'CPU'} ({result['device']}), torch {result['torch']}, "
                  f"{result.get('cpu_threads', '?')} CPU threads, {kernels} CPU kernels "
                  f"({result.get('isa_used', '?')}), model {result['model']}, "
                  f"acceleration {result.get('acceleration', {})}; median of "
                  f"{_measured(result)}, each row in a fresh process. GFLOP: one "
                  "step's forward and backward passes, torch's FLOP counter.", "",
                  f"| row | ms/step, best | median | × {base_name or '–'} (best / median) | "
                  f"GFLOP/step | × FLOPs | memory GB, mean / max ({memory}) | RSS growth GB | "
                  "G params | D params |", "|---|---|---|---|---|---|---|---|---|---|"]
        reference = result.get("reference_pix2pixhd")
        base = rows.get(base_name, {})
        named = list(rows.items()) + ([("NVIDIA pix2pixHD (reference)", reference)]
                                      if reference else [])
        for name, values in named:
            ratios = step_ratios(values, base, "base") if base else {}
            time_ratios = f"{ratios['best_step_vs_base']:.2f} / " \
                f"{ratios['median_step_vs_base']:.2f}" if ratios else ""
            lines.append(f"| {name} | {values['best_step_seconds'] * 1000:.1f} | "
                         f"{values['median_step_seconds'] * 1000:.1f} | {time_ratios} | "
                         f"{values['gflop_per_step']:.1f} | "
                         f"{_number(ratios.get('flops_vs_base'))} | {_memory_cells(values)} | "
                         f"{_number(values.get('rss_growth_gb'))} | "
                         f"{values['generator_parameters']:,} | "
                         f"{values['discriminator_parameters']:,} |")
        lines += ["", "Targets (on the best step of each row: interference from other work on a "
                  "shared machine only adds time):"]
        if reference:
            ratio = result["pix2pixhd_best_step_vs_reference"]
            verdict = ('met' if ratio <= REFERENCE_TARGET else 'NOT met') if size == "paper" \
                else "the target is for the paper size"
            lines.append(f"- our Pix2PixHD step / NVIDIA's = {ratio:.2f} (target ≤ "
                         f"{REFERENCE_TARGET}): {verdict}; median steps "
                         f"{result['pix2pixhd_median_step_vs_reference']:.2f}, FLOPs "
                         f"{result['pix2pixhd_flops_vs_reference']:.2f}×")
        elif size == "paper":
            lines.append("- our Pix2PixHD vs NVIDIA's: not measured (give --reference, a "
                         "pix2pixHD checkout)")
        for name, target in TARGETS.items():
            if name in rows and base_name == "pix2pixhd":
                ratio = rows[name]["best_step_vs_pix2pixhd"]
                lines.append(f"- {name} / pix2pixhd = {ratio:.2f} (target ≤ {target}): "
                             f"{'met' if ratio <= target else 'NOT met'}; median steps "
                             f"{rows[name]['median_step_vs_pix2pixhd']:.2f}, FLOPs "
                             f"{rows[name]['flops_vs_pix2pixhd']:.2f}×")
        if gpu and {"mex", "amex"} <= rows.keys():
            mex = rows["mex"]["mem_gpu_step_peak_max_gb"]
            amex = rows["amex"]["mem_gpu_step_peak_max_gb"]
            lines.append(f"- per-step peak memory MEx {mex:.2f} GB < A-MEx {amex:.2f} GB "
                         f"(paper Table 4: 4.43 < 4.54): {'yes' if mex < amex else 'no'}")
        paper_images = get_dataset(result["dataset"]).paper_images  # batch 1, 200 epochs
        images = paper_images[0] if paper_images else None
        if gpu and images and size == "paper":
            for name in ("pix2pixhd", "mex", "amex"):
                if name in rows:
                    hours = rows[name]["median_step_seconds"] * images * 200 / 3600
                    lines.append(f"- estimated {name} training, 200 epochs × {images:,} "
                                 f"{result['dataset']} images at batch 1: {hours:.1f} h")
        parts = sorted({part for values in rows.values()
                        for part in values.get("breakdown_ms", {})},
                       key=lambda part: -max(v.get("breakdown_ms", {}).get(part, 0)
                                             for v in rows.values()))
        if parts:
            lines += ["", "Where the step's time goes (ms per step; a module's forward is "
                      "counted apart from the part that calls it; backward passes are "
                      "G_backward / D_backward):", "",
                      "| part | " + " | ".join(rows) + " |",
                      "|---|" + "---|" * len(rows)]
            for part in parts:
                lines.append(f"| {part} | " + " | ".join(
                    f"{values.get('breakdown_ms', {}).get(part, 0):.1f}"
                    for values in rows.values()) + " |")
        lines.append("")
    return "\n".join(lines)
