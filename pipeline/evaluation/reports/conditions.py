"""The run's conditions beside the paper's (the first table of reports/README.md) and the
warnings shown above everything."""
from __future__ import annotations

import json
import os

from pipeline.data.sets import get_dataset


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
        paper = get_dataset(name)
        lines.append((f"{name}: size, train / test", f"{dataset.width}x{dataset.height}, {split}",
                      "{}x{}, {}".format(*paper.size, paper.paper_split)))
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
