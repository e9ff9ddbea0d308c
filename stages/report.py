"""Render the paper's tables (Table 3 from the inpainting evaluation), the q-sensitivity plot,
the picture grids, the training curves and reports/README.md (all of them on one page, with
the run's conditions).

  python -m stages.report
"""
import argparse
import json
import os

import numpy as np
import pandas as pd

from pipeline.config import load_params
from pipeline.data.datasets import get_spec
from pipeline.evaluation.floors import floor_row_name
from pipeline.evaluation.reports import (FLOOR_NOTE, NOT_REPRODUCED, PAPER_TABLE1, PAPER_TABLE2,
                              PAPER_TABLE3, PAPER_TABLE4, TABLE3_READINGS, comparison_table,
                              differences_table,
                              box_convention_note, floor_rows, held_back_floors,
                              held_back_inpainting_floors,
                              inpainting_differences, inpainting_grid, inpainting_table,
                              plot_metric_curves, plot_q_sensitivity, plot_training_curves,
                              q_sensitivity, q_sweep_rows, qualitative_grid, read_curves,
                              read_eval_curves, render_readme, table3_paper, table3_readings,
                              write_table)
from pipeline.config import seed_dir
from pipeline.apps.huev import table1_with_huev
from pipeline.evaluation.paper_tables import write_paper_table
from stages.common import run

PAPER_SIZES = {"cityscapes": "256x128", "nyu": "192x144", "helen": "256x256"}
PAPER_SPLITS = {"cityscapes": "2975 / 500", "nyu": "1200 / 249", "helen": "1800 / 299"}


def read_json(path, stage="evaluate"):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (run the {stage} stage)")
    with open(path) as f:
        return json.load(f)


def run_conditions(params, conditions: dict, data_root: str) -> list:
    """(what, this run, paper) lines of the README's conditions table."""
    source = conditions["data_source"]
    data = (f"synthetic (embedded generator, data.seed {params.data.seed})"
            if source == "synthetic" else f"{source} (archives in {params.data.raw_dir}; "
            f"synthetic: embedded generator, data.seed {params.data.seed})"
            if "synthetic" in source else f"{source} (archives in {params.data.raw_dir})")
    lines = [("data", data, "real Cityscapes / NYU Depth v2 / Helen")]
    for name, dataset in params.datasets.items():
        split = "—"
        stats_path = os.path.join(data_root, name, "stats.json")
        if os.path.exists(stats_path):
            with open(stats_path) as f:
                stats = json.load(f)
            split = (f"{stats['train']['images']} / {stats['test']['images']} images, "
                     f"{stats['test'].get('test_boxes', '?')} test boxes")
        lines.append((f"{name}: size, train / test", f"{dataset.width}x{dataset.height}, {split}",
                      f"{PAPER_SIZES.get(name, '?')}, {PAPER_SPLITS.get(name, '?')}"))
    m, loss, profile = params.model, params.loss, params.row_profile()
    lines += [
        ("epochs (structure G / translator G_I)",
         f"{params.train.epochs} / {params.translator.epochs}", "200 / pix2pixHD's pretrained"),
        ("generator / discriminator", f"ngf {m.ngf}, {m.n_downsampling} downsamplings, "
         f"{m.n_blocks} blocks; ndf {m.ndf}", "ngf 64, 4 downsamplings, 9 blocks; ndf 64"),
        ("λ1..λ4 (adv, feat, perc, MEx)",
         f"{loss.lambda_adv:g}, {profile.lambda_feat:g}, {profile.lambda_perc:g}, "
         f"{loss.lambda_mex:g}", "1, 1, 1, 1"),
        ("profile (rows without their own)",
         f"{params.profile}: L_B on {profile.basic_loss_on}, discriminators "
         f"{'q+1' if profile.discriminators == 'q_plus_one' else 'q'}, VGG input "
         f"{profile.vgg_input}", "paper: L_B on raw (Ỹ), q+1, not stated"),
        ("q (NYU) / α / β", f"{params.q} ({params.q_overrides.get('nyu', params.q)}) / "
         f"{params.alpha} / {params.beta}", "4 (5) / 5 / 5"),
        ("device", conditions["device"], "GPU"),
        ("VGG19 (perceptual loss)", "; ".join(conditions["vgg_sources"]), "ImageNet VGG19"),
        ("FID", f"{conditions['fid_metric']}: {conditions['fid_source']}",
         "pytorch-fid pool3 (2048-d)"),
        ("test boxes", f"seed {conditions['test_box_seed']}, one per test image", "seed 679"),
    ]
    return lines


def inpainting_conditions(params, conditions: dict, data_root: str) -> list:
    """(what, this run, paper) lines of the inpainting experiment (Table 3)."""
    ip = params.inpainting
    split = "—"
    stats_path = os.path.join(data_root, "stats.json")
    if os.path.exists(stats_path):
        with open(stats_path) as f:
            stats = json.load(f)
        split = (f"{stats['train']['images']} / {stats['test']['images']} images, "
                 f"{stats['test'].get('test_masks', '?')} test holes")
    joint = ip.epochs - ip.completion_epochs - ip.discriminator_epochs
    fill = ", ".join(f"{v:.1f}" for v in conditions.get("fill", []))
    return [
        (f"{ip.dataset} (inpainting): size, train / test", f"{ip.width}x{ip.height}, {split}",
         "248x242, 598 / 8 images, 20 holes each"),
        ("inpainting holes", f"sides {ip.hole_min:g}–{ip.hole_max:g} of the image, "
         f"{conditions['holes_per_image']} per test image (seed {conditions['hole_seed']}), "
         f"pre-filled with the training mean ({fill}); FID on the first "
         f"{conditions['fid_holes_per_image']} per image", "20 per test image, seed 679"),
        ("GL epochs (completion / discriminators / joint)",
         f"{ip.epochs} ({ip.completion_epochs} / {ip.discriminator_epochs} / {joint}), "
         f"batch {ip.batch_size}, Adam {ip.lr:g} β1 {ip.beta1:g}",
         "2000 (GL's phases: 18 % / 2 % / 80 %)"),
        ("GL networks", f"ngf {ip.ngf}, dilations {', '.join(map(str, ip.dilations))}; ndf "
         f"{ip.ndf}, global / local layers {ip.global_layers} / {ip.local_layers}",
         "ngf 64, dilations 2, 4, 8, 16; ndf 64, 6 / 5 layers"),
        ("GL α / A-MEx λ4, q / α / β", f"{ip.lambda_adv:g} / {ip.lambda_amex:g}, "
         f"{ip.q} / {ip.alpha} / {ip.beta}", "0.0004 / 1, 4 / 4 / 4"),
        ("inpainting FID", f"{conditions['fid_metric']}: {conditions['fid_source']}",
         "pytorch-fid pool3 (2048-d)"),
    ]


TABLE3_NOTE = (
    "SSIM / L1 of the completed photo against the ground truth, over the hole (the only pixels "
    "a row changes: outside it the output is the input photo). SSIM: skimage "
    "structural_similarity on the hole's crop (data range 255, uniform 7x7 window, channels "
    "averaged). L1: mean absolute difference over the hole's pixels and channels on the 0–255 "
    "scale. `ssim_image` / `l1_image`: the same over the whole image (the hole score diluted by "
    "the hole's share of the image), for comparison. The paper does not say which it used; a "
    "public copy of the GL code it names (GL_Image_Inapinting_pytorch, eval.py) scores the "
    "hole's crop and prints L1 as the mean |difference| on [-1, 1] × 100, i.e. 100/127.5 = "
    "0.78 × our 0–255 value. Every row and floor is scored on the same seed-679 holes (20 per "
    "test image); intervals: 95 % bootstrap over test images (each the mean of "
    "its holes) and training seeds; FID is one number per run (no interval), the completed "
    "photos against the ground-truth photos of the same holes. The verdict: the paired "
    "difference to the better floor (higher SSIM, lower L1) excludes 0 (better / worse) or "
    "not (cannot tell). Floors (no training): `floor-mean-fill` leaves the "
    "hole filled with the training-set mean colour (GL's own input), `floor-biharmonic` fills "
    "it with skimage.restoration.inpaint_biharmonic.")


def warnings_for(conditions: dict) -> list:
    lines = []
    if "synthetic" in conditions["data_source"]:   # all synthetic, or some datasets
        lines.append("Synthetic demo data at toy size: these numbers show that the pipeline runs "
                     "end to end; they are not a reproduction of the paper, and the differences "
                     "to the paper say nothing about the method.")
    if conditions["fid_metric"] != "fid":
        lines.append(f"No FID: the Inception weights were missing, so `{conditions['fid_metric']}`"
                     " (a labelled stand-in, not an FID) is shown under its own name and the FID "
                     "column stays empty.")
    if any(s.startswith("STAND-IN") for s in conditions["vgg_sources"]):
        lines.append("The perceptual loss used a random-init VGG19 stand-in (no ImageNet "
                     "weights).")
    if any(s.startswith("DROPPED") for s in conditions["vgg_sources"]):
        lines.append("No perceptual loss: the VGG19 weights were missing and "
                     "`loss.without_vgg_weights: drop` removed L_perc (λ3 term) from training.")
    lines.append("Time and memory vary from run to run and are kept out of the reproducible "
                 "outputs: every run's `reports/train/<row>/seed<k>/resources.json` (per-step peak "
                 "memory; on CPU the peak RSS `mem_cpu_step_peak_rss_*_gb`, a different quantity "
                 "from the paper's GPU memory; never compared).")
    return lines


STUDY_SUMMARY = "study/summary.md"
STUDY_SUMMARY_AUTHORS = "study_authors/summary.md"  # the same study under the authors' profile
STUDY_SUMMARY_TWOSM = "study_twosm/summary.md"      # Table 2's study (profile twosm)
STUDY_SUMMARY_GL = "study_gl/summary.md"            # Table 3's study (profile gl)
STUDY_SUMMARY_REAL = "study_real/summary.md"        # Table 2's rows on real maps (profile real)
REAL_MAPS = "real_maps.md"                          # stages.real_maps: rows on real Cityscapes


def study_section(reports: str) -> str:
    """The CPU study's summaries (written by `make study`): the paper profile's, then the
    authors' profile's, Table 2's (twosm), Table 3's (gl) and the real-maps profile's when
    those were run, and the real-map scores (stages.real_maps) when committed."""
    path = os.path.join(reports, STUDY_SUMMARY)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist (`make study` writes it; a checkout "
                                "without a study keeps the committed one)")
    parts = []
    for name in (STUDY_SUMMARY, STUDY_SUMMARY_AUTHORS, STUDY_SUMMARY_TWOSM, STUDY_SUMMARY_GL,
                 STUDY_SUMMARY_REAL, REAL_MAPS):
        if os.path.exists(os.path.join(reports, name)):
            with open(os.path.join(reports, name)) as f:
                parts.append(f.read().rstrip())
    return "\n\n".join(parts) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--artifacts", default="artifacts")
    args = parser.parse_args()
    params = load_params(args.params)
    reports = args.reports
    metrics = read_json(os.path.join(reports, "metrics.json"))
    scores_path = os.path.join(reports, "scores.csv")
    if not os.path.exists(scores_path):
        raise FileNotFoundError(f"{scores_path} does not exist (run the evaluate stage)")
    scores = pd.read_csv(scores_path)
    datasets = list(params.datasets)
    conditions = read_json(os.path.join(reports, "run_conditions.json"))
    inpainting = read_json(os.path.join(reports, "inpainting_metrics.json"))
    inpainting_conditions_raw = read_json(os.path.join(reports,
                                                       "inpainting_run_conditions.json"))
    inpainting_scores_path = os.path.join(reports, "inpainting_scores.csv")
    if not os.path.exists(inpainting_scores_path):
        raise FileNotFoundError(f"{inpainting_scores_path} does not exist (run the "
                                "evaluate_inpainting stage)")
    inpainting_scores = pd.read_csv(inpainting_scores_path)
    sizes = ", ".join(f"{name} {d.width}x{d.height}" for name, d in params.datasets.items())
    note = (f"Ours: data {conditions['data_source']}, {sizes}, {params.train.epochs} epochs, "
            f"ngf {params.model.ngf}, device {conditions['device']}; FID: "
            f"{conditions['fid_source']}; VGG19: {'; '.join(conditions['vgg_sources'])}. "
            "Paper: real data at full size, 200 epochs, GPU. A paper value sits beside ours "
            "only where the metric is the same quantity. Intervals: 95 % bootstrap over "
            f"test boxes and the {len(params.seeds)} training seed(s) (scipy.stats.bootstrap; "
            "with one seed it covers box sampling only). The verdict: the paired difference to "
            "the stronger floor row excludes 0 (above / below) or not (cannot tell). "
            + box_convention_note(metrics, conditions.get("box_convention", "whole")) + " "
            + FLOOR_NOTE)
    city = [d for d in datasets if d == "cityscapes"]
    tables = [
        ("Table 1 — Pix2PixHD vs MExGAN", "table1",
         table1_with_huev(comparison_table(metrics, PAPER_TABLE1, ["tiou", "hamm", "fid"],
                                           scores, datasets),
                          read_json(os.path.join(reports, "huev.json"), "huev")),
         "tIOU / hamm / FID on the seed-679 test boxes (ours − paper: table1.csv). HuEv "
         "(Cityscapes): share of the human evaluation's two-alternative forced choices won by "
         "the row (reports/huev.md; `python -m stages.serve` runs the study), with a 95 % "
         "Clopper-Pearson interval; votes = votes for the row / all votes."),
        ("Table 2 — TwoSM, TwoSM+Full, +MEx, +A-MEx on Cityscapes", "table2",
         comparison_table(metrics, PAPER_TABLE2, ["tiou", "hamm"], scores, city),
         "tIOU / hamm of the two-stream model of Hong et al. 2018 (rows twosm-cityscapes = "
         "TwoSM, local observation; twosm-full-cityscapes = TwoSM+Full, the whole map; "
         "+mex / +amex: λ4 L_MEx / L_A-MEx on the context stream), twosm.build "
         f"`{params.twosm.build}` (docs/twosm.md). Its labels come from its streams, with no "
         "colour round trip (unlike the Pix2PixHD rows): "
         + ("l_t where the mask stream > 0.5, the context stream's argmax elsewhere in the "
            "box (Hong et al.). " if params.twosm.labels == "painted_mask" else
            "the context stream's argmax. ")
         + "Boxes: the same seed-679 Cityscapes test boxes as Tables 1 and 4 (size threshold "
         + (f"{params.datasets['cityscapes'].size_threshold:g}" if city else "—")
         + "); the TwoSM rows train on boxes down to their own threshold (paper: 0.01). The "
         "paper's TwoSM rows were scored on other boxes than its Pix2PixHD rows. "
         + FLOOR_NOTE),
        ("Table 3 — GL vs GL+A-MEx, inpainting on CMP Facade", "table3",
         inpainting_table(inpainting, inpainting_scores,
                          table3_paper(params.inpainting_rows, PAPER_TABLE3),
                          params.inpainting.dataset),
         (table3_readings(params.inpainting_rows) + " ").lstrip() +
         f"{TABLE3_NOTE} Ours: {params.inpainting.width}x{params.inpainting.height}, "
         f"{params.inpainting.epochs} epochs (paper 2000), FID: "
         f"{inpainting_conditions_raw['fid_source']}."),
        ("Table 4 — MExGAN vs A-MExGAN", "table4",
         comparison_table(metrics, PAPER_TABLE4, ["tiou", "hamm"], scores, city),
         "tIOU / hamm (paper also: GPU memory, 4.43 GB MExGAN vs 4.54 GB A-MExGAN). "
         "Memory is not a reproducible output: each run's resources.json has its per-step "
         "peak, and `make bench` on a GPU measures it at the paper's size "
         "(`reports/bench_gpu.md`: per-step peak of the CUDA allocator, MExGAN vs A-MExGAN)."),
    ]
    for title, stem, frame, text in tables:   # .md in the paper's layout, .csv long form
        reproduced = not (frame["ours"] == NOT_REPRODUCED).all()
        write_paper_table(frame, os.path.join(reports, stem), title,
                          f"{text}\n\n{note}" if reproduced and stem != "table3" else text)
    differences = pd.concat([differences_table(scores, datasets),
                             inpainting_differences(inpainting_scores,
                                                    list(params.inpainting_rows),
                                                    params.inpainting.dataset)],
                            ignore_index=True)
    differences_note = (
        "A − B on the same seed-679 test boxes: mean difference and 95 % bootstrap interval "
        "(boxes resampled jointly for A and B, each row's seeds independently); excludes_0 = "
        "yes means this run resolves the difference, no means it cannot tell the two apart. "
        + FLOOR_NOTE)
    write_table(differences, os.path.join(reports, "differences"),
                "Paired differences (the paper's comparisons)", differences_note)

    sweep = q_sensitivity(metrics, q_sweep_rows(params))
    sweep.to_csv(os.path.join(reports, "q_sensitivity.csv"), index=False, float_format="%.6g")
    q_plot = "q_sensitivity.png"   # a declared output: drawn (empty, saying so) without rows
    q_floors = {m: {r: metrics[r][m] for r in floor_rows("cityscapes") if r in metrics}
                for m in ("tiou", "hamm")}
    plot_q_sensitivity(sweep, os.path.join(reports, q_plot),
                       f"{conditions['data_source']} Cityscapes, alpha=beta={params.alpha}",
                       q_floors)
    if not len(sweep):
        q_plot = None

    figures = os.path.join(reports, "figures")
    os.makedirs(os.path.join(figures, "curves"), exist_ok=True)
    grids = []
    for dataset in params.datasets:
        shown = {}
        for title, prefix in (("Pix2PixHD", "pix2pixhd"), ("MExGAN", "mexgan"),
                              ("TwoSM+Full", "twosm-full")):
            path = os.path.join(args.artifacts, "eval", f"{prefix}-{dataset}.npz")
            if os.path.exists(path):
                shown[title] = dict(np.load(path))
        if shown:
            qualitative_grid(shown, get_spec(dataset).label_names,
                             os.path.join(figures, f"grid_{dataset}.png"))
            grids.append((f"{dataset}: {' vs '.join(shown)}", f"figures/grid_{dataset}.png"))

    ip = params.inpainting
    shown = {}
    columns = [(row, TABLE3_READINGS[(spec.loss, spec.amex_reading)][1])
               for row, spec in params.inpainting_rows.items()]
    columns.append((floor_row_name("biharmonic", ip.dataset), "floor: biharmonic"))
    for row, title in columns:
        path = os.path.join(args.artifacts, "inpainting", "eval", f"{row}.npz")
        if os.path.exists(path):
            shown[row if title in shown else title] = dict(np.load(path))
    if shown:
        inpainting_grid(shown, os.path.join(figures, f"grid_{ip.dataset}.png"))
        grids.append((f"{ip.dataset} inpainting (Fig 7 layout): ground truth, masked input, "
                      f"{', '.join(shown)}", f"figures/grid_{ip.dataset}.png"))

    curves, metric_curves = [], []
    runs = [(f"translator-{d}", os.path.join(reports, "train", f"translator-{d}"))
            for d in params.datasets]
    runs += [(f"{row}-seed{seed}", seed_dir(os.path.join(reports, "train"), row, seed))
             for row in list(params.rows) + list(params.inpainting_rows)
             for seed in params.seeds]
    for name, live_dir in runs:
        history = {k: v for k, v in read_curves(live_dir).items() if not k.startswith("eval/")}
        if history:
            plot_training_curves(history, os.path.join(figures, "curves", f"{name}.png"), name)
            curves.append((name, f"figures/curves/{name}.png"))
    for dataset in datasets:
        rows = read_eval_curves(os.path.join(reports, "train"),
                                [r for r, spec in params.rows.items() if spec.dataset == dataset],
                                params.seeds)
        if rows:
            floors_here = {m: held_back_floors(scores, dataset, params.train.eval_boxes, m)
                           for m in ("tiou", "hamm")}
            image = f"figures/metric_curves_{dataset}.png"
            plot_metric_curves(rows, floors_here, os.path.join(reports, image),
                               f"{dataset}: tIOU / hamm on the first {params.train.eval_boxes} "
                               "test boxes during training")
            metric_curves.append((dataset, image))

    rows = read_eval_curves(os.path.join(reports, "train"), params.inpainting_rows,
                            params.seeds)
    if rows:
        floors_here = {m: held_back_inpainting_floors(inpainting_scores, params.train.eval_boxes,
                                                      m) for m in ("ssim", "l1")}
        image = f"figures/metric_curves_{ip.dataset}.png"
        plot_metric_curves(rows, floors_here, os.path.join(reports, image),
                           f"{ip.dataset}: SSIM / L1 over the hole, first hole of the first "
                           f"{params.train.eval_boxes} test images, during training")
        metric_curves.append((f"{ip.dataset} (inpainting)", image))

    readme = render_readme(
        conditions=run_conditions(params, conditions, os.path.join(args.artifacts, "data"))
        + inpainting_conditions(params, inpainting_conditions_raw,
                                os.path.join(args.artifacts, "inpainting", "data")),
        tables=[(title, text, frame) for title, _, frame, text in tables],
        q_sweep=sweep if len(sweep) else None, q_plot=q_plot, grids=grids, curves=curves,
        warnings=warnings_for(conditions), differences=(differences_note, differences),
        metric_curves=metric_curves, study=study_section(reports))
    with open(os.path.join(reports, "README.md"), "w") as f:
        f.write(readme)
    print(f"reports: README.md, table1-4, differences, q_sensitivity, {len(grids)} grids, "
          f"{len(curves)} training-curve figures")


if __name__ == "__main__":
    run(main)
