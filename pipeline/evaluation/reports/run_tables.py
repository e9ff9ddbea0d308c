"""The run's Tables 1-4 (the paper's beside ours, with their notes) and its paired differences,
as the report stage writes them: reports/table<N>.{md,csv} and reports/differences.{md,csv}."""
from __future__ import annotations

import os
from typing import NamedTuple

import pandas as pd

from pipeline.data.sets import STREET_DATASET
from pipeline.evaluation.paper_tables import write_paper_table
from pipeline.evaluation.reports.differences import differences_table
from pipeline.evaluation.reports.inpainting_tables import inpainting_differences, inpainting_table
from pipeline.evaluation.reports.paper_values import (PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3,
                                                      PAPER_TABLE4, table3_paper, table3_readings)
from pipeline.evaluation.reports.tables import (FLOOR_NOTE, NOT_REPRODUCED, box_convention_note,
                                                comparison_table, write_table)

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
DIFFERENCES_NOTE = (
    "A − B on the same seed-679 test boxes: mean difference and 95 % bootstrap interval "
    "(boxes resampled jointly for A and B, each row's seeds independently); excludes_0 = "
    "yes means this run resolves the difference, no means it cannot tell the two apart. "
    + FLOOR_NOTE)


class ReportTable(NamedTuple):
    """One of the paper's tables: its title, file stem (table<N>), long form and note."""
    title: str
    stem: str
    frame: pd.DataFrame
    note: str


def ours_note(params, metrics: dict, conditions: dict) -> str:
    """The note under Tables 1, 2 and 4: this run's conditions against the paper's, how the
    intervals and verdicts are made, which part of a box is scored, what the floors are."""
    sizes = ", ".join(f"{name} {d.width}x{d.height}" for name, d in params.datasets.items())
    return (f"Ours: data {conditions['data_source']}, {sizes}, {params.train.epochs} epochs, "
            f"ngf {params.model.ngf}, device {conditions['device']}; FID: "
            f"{conditions['fid_source']}; VGG19: {'; '.join(conditions['vgg_sources'])}. "
            "Paper: real data at full size, 200 epochs, GPU. A paper value sits beside ours "
            "only where the metric is the same quantity. Intervals: 95 % bootstrap over "
            f"test boxes and the {len(params.seeds)} training seed(s) (scipy.stats.bootstrap; "
            "with one seed it covers box sampling only). The verdict: the paired difference to "
            "the stronger floor row excludes 0 (above / below) or not (cannot tell). "
            + box_convention_note(metrics, conditions.get("box_convention", "whole")) + " "
            + FLOOR_NOTE)


def run_tables(params, metrics: dict, scores: pd.DataFrame, inpainting: dict,
               inpainting_scores: pd.DataFrame, inpainting_conditions: dict) -> list:
    """Tables 1-4 (ReportTable) of a run: metrics / scores of the evaluate stage, inpainting /
    inpainting_scores / inpainting_conditions of evaluate_inpainting. Table 1 has no HuEv
    column yet (pipeline.apps.huev.table1_with_huev adds it)."""
    datasets = list(params.datasets)
    city = [d for d in datasets if d == STREET_DATASET]   # Table 2 is on Cityscapes
    tables = [
        ("Table 1 — Pix2PixHD vs MExGAN", "table1",
         comparison_table(metrics, PAPER_TABLE1, ["tiou", "hamm", "fid"], scores, datasets),
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
         + (f"{params.datasets[STREET_DATASET].size_threshold:g}" if city else "—")
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
         f"{inpainting_conditions['fid_source']}."),
        ("Table 4 — MExGAN vs A-MExGAN", "table4",
         comparison_table(metrics, PAPER_TABLE4, ["tiou", "hamm"], scores, city),
         "tIOU / hamm (paper also: GPU memory, 4.43 GB MExGAN vs 4.54 GB A-MExGAN). "
         "Memory is not a reproducible output: each run's resources.json has its per-step "
         "peak, and `make bench` on a GPU measures it at the paper's size "
         "(`reports/bench_gpu.md`: per-step peak of the CUDA allocator, MExGAN vs A-MExGAN)."),
    ]
    return [ReportTable(*table) for table in tables]


def write_run_tables(tables: list, note: str, reports: str) -> None:
    """reports/table<N>.md in the paper's layout and .csv in the long form; `note` (ours_note)
    follows each reproduced table's own note, except Table 3's (its conditions differ)."""
    for title, stem, frame, text in tables:
        reproduced = not (frame["ours"] == NOT_REPRODUCED).all()
        write_paper_table(frame, os.path.join(reports, stem), title,
                          f"{text}\n\n{note}" if reproduced and stem != "table3" else text)


def run_differences(params, scores: pd.DataFrame, inpainting_scores: pd.DataFrame,
                    reports: str) -> pd.DataFrame:
    """The paired differences of Tables 1, 2, 4 and 3, written to reports/differences.{md,csv}."""
    differences = pd.concat([differences_table(params, scores, list(params.datasets)),
                             inpainting_differences(inpainting_scores,
                                                    params.inpainting_rows,
                                                    params.inpainting.dataset)],
                            ignore_index=True)
    write_table(differences, os.path.join(reports, "differences"),
                "Paired differences (the paper's comparisons)", DIFFERENCES_NOTE)
    return differences
