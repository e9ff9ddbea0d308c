"""Reports and the CI metrics gate: comparison tables, the q-sweep, reports/README.md from a
small fake run, the dvc.yaml plots / outs that go with them, and stages.check_metrics."""
import dataclasses
import io
import json
import math
import os
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config.loading import load_params
from pipeline.apps.huev_results import summary as huev_summary
from pipeline.evaluation.reports.curves import read_curves
from pipeline.evaluation.reports.paper_values import (PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3,
                                                      PAPER_TABLE4)
from pipeline.evaluation.reports.tables import (NOT_REPRODUCED, comparison_table, markdown_table,
                                                not_reproduced_table, q_sensitivity, q_sweep_rows)
from pipeline.evaluation import metrics_gate
from stages import check_metrics, report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDIN = "fid_standin_random_inception_64d"


def fake_metrics():
    rows = {"pix2pixhd-cityscapes": (0.5, 0.6, -1), "mexgan-cityscapes": (0.75, 0.7, 4),
            "amexgan-cityscapes": (0.8, 0.9, 4), "mexgan-q2-cityscapes": (0.3, 0.4, 2),
            "mexgan-q0-cityscapes": (0.1, 0.2, 0)}
    return {row: {"tiou": t, "hamm": h, STANDIN: 0.001, "q": q, "test_boxes": 11}
            for row, (t, h, q) in rows.items()}


def line(frame, row, metric):
    found = frame[(frame["row"] == row) & (frame["metric"] == metric)]
    assert len(found) == 1, (row, metric)
    return found.iloc[0]


# --- tables -------------------------------------------------------------------------------

def test_comparison_table_difference_is_ours_minus_paper():
    frame = comparison_table(fake_metrics(), PAPER_TABLE1, ["tiou", "hamm", "fid"])
    tiou = line(frame, "mexgan-cityscapes", "tiou")
    assert tiou["paper"] == 0.7493 and tiou["ours"] == 0.75
    assert tiou["difference"] == pytest.approx(0.75 - 0.7493)


def test_a_standin_fid_is_listed_under_its_own_name_and_never_compared():
    frame = comparison_table(fake_metrics(), PAPER_TABLE1, ["tiou", "hamm", "fid"])
    fid = line(frame, "mexgan-cityscapes", "fid")
    assert fid["paper"] == 139.14 and pd.isna(fid["ours"]) and pd.isna(fid["difference"])
    standin = line(frame, "mexgan-cityscapes", STANDIN)
    assert standin["ours"] == 0.001 and pd.isna(standin["paper"])
    assert pd.isna(standin["difference"])


def test_floor_rows_follow_the_paper_rows_and_trained_rows_are_placed_against_them():
    frame = comparison_table(fake_metrics() | {"floor-fill-box-cityscapes": {"tiou": 0.8}},
                             PAPER_TABLE4, ["tiou"], fake_scores(), ["cityscapes"])
    assert list(frame["row"])[-1] == "floor-fill-box-cityscapes"
    assert line(frame, "mexgan-cityscapes", "tiou")["vs_floor"] == "below floor"
    assert pd.isna(line(frame, "floor-fill-box-cityscapes", "tiou")["paper"])


def test_differences_table_lists_the_papers_comparisons_with_paired_intervals():
    from pipeline.evaluation.reports.differences import differences_table
    params = load_params(os.path.join(REPO, "params.yaml"))
    frame = differences_table(params, fake_scores(), ["cityscapes"], ["tiou"])
    comparisons = list(frame["comparison"])
    assert comparisons[:2] == ["mexgan-cityscapes − pix2pixhd-cityscapes",
                               "amexgan-cityscapes − mexgan-cityscapes"]
    assert len(comparisons) == 2 + 3 * 2  # + every trained row against both floors
    mex = frame.iloc[0]
    # per box 0.3, 0.2, 0.1, 0.25: every paired resample lies in [0.1, 0.3]
    assert mex["difference"] == pytest.approx(0.2125) and mex["excludes_0"] == "yes"
    assert 0.1 - 1e-12 <= mex["ci_low"] < mex["ci_high"] <= 0.3 + 1e-12


def test_cpu_memory_is_shown_as_peak_rss_without_a_difference():
    metrics = fake_metrics()
    metrics["mexgan-cityscapes"]["mem_cpu_step_peak_rss_mean_gb"] = 0.95
    frame = comparison_table(metrics, PAPER_TABLE4, ["tiou", "hamm", "mem_gpu_step_peak_mean_gb"])
    gpu = line(frame, "mexgan-cityscapes", "mem_gpu_step_peak_mean_gb")
    assert gpu["paper"] == 4.43 and pd.isna(gpu["ours"]) and pd.isna(gpu["difference"])
    rss = line(frame, "mexgan-cityscapes", "mem_cpu_step_peak_rss_mean_gb")
    assert rss["ours"] == 0.95 and pd.isna(rss["paper"]) and pd.isna(rss["difference"])


def test_a_row_the_run_does_not_have_shows_the_paper_only():
    frame = comparison_table({}, PAPER_TABLE1, ["tiou"])
    assert len(frame) == len(PAPER_TABLE1)
    assert frame["ours"].isna().all() and frame["paper"].notna().all()


def test_tables_2_and_3_say_not_reproduced_yet():
    for paper, metrics in ((PAPER_TABLE2, ["tiou", "hamm"]), (PAPER_TABLE3, ["ssim", "l1", "fid"])):
        frame = not_reproduced_table(paper, metrics)
        assert len(frame) == len(paper) * len(metrics)
        assert (frame["ours"] == NOT_REPRODUCED).all() and frame["difference"].isna().all()
    assert line(not_reproduced_table(PAPER_TABLE2, ["tiou"]), "twosm-cityscapes",
                "tiou")["paper"] == 0.7064
    assert line(not_reproduced_table(PAPER_TABLE3, ["l1"]), "gl-amex-facade",
                "l1")["paper"] == 20.22


def test_markdown_table_marks_missing_values():
    text = markdown_table(comparison_table(fake_metrics(), PAPER_TABLE1, ["fid"]))
    assert "| mexgan-cityscapes | fid | 139.1400 | — | — |" in text


SWEEP = ["mexgan-q0-cityscapes", "mexgan-q2-cityscapes"]
MAIN = "mexgan-cityscapes"   # the Table 1 MExGAN row


def test_q_sensitivity_keeps_the_sweep_rows_sorted_by_q_and_adds_the_main_row():
    frame = q_sensitivity(fake_metrics(), SWEEP, MAIN)
    assert list(frame["row"]) == ["mexgan-q0-cityscapes", "mexgan-q2-cityscapes",
                                  "mexgan-cityscapes"]
    assert list(frame["q"]) == [0, 2, 4] and list(frame["tiou"]) == [0.1, 0.3, 0.75]
    metrics = fake_metrics()
    metrics["mexgan-q4-cityscapes"] = dict(metrics["mexgan-cityscapes"], tiou=0.2)
    frame = q_sensitivity(metrics, SWEEP + ["mexgan-q4-cityscapes"], MAIN)  # q = 4 wins over main
    assert list(frame["row"]) == ["mexgan-q0-cityscapes", "mexgan-q2-cityscapes",
                                  "mexgan-q4-cityscapes"]
    frame = q_sensitivity(metrics, SWEEP, MAIN)   # a name alone does not make a sweep row
    assert list(frame["row"]) == ["mexgan-q0-cityscapes", "mexgan-q2-cityscapes",
                                  "mexgan-cityscapes"]


def test_the_q_sweep_rows_come_from_the_params_q_sweep_section():
    params = load_params(os.path.join(REPO, "params.yaml"))
    assert q_sweep_rows(params) == ["mexgan-q0-cityscapes", "mexgan-q1-cityscapes",
                                    "mexgan-q2-cityscapes", "mexgan-q8-cityscapes"]
    rows = dict(params.mex_rows)
    rows["fig10-three"] = dataclasses.replace(rows["mexgan-q2-cityscapes"], q_from="q_sweep.q3")
    rows["mexgan-q4-cityscapes"] = rows["mexgan-cityscapes"]             # its q is `q`
    rows["amexgan-q1-cityscapes"] = dataclasses.replace(rows["amexgan-cityscapes"],
                                                        q_from="q_sweep.q1")   # not MExGAN
    del rows["mexgan-q8-cityscapes"]
    changed = dataclasses.replace(params, q_sweep={**params.q_sweep, "q3": 3}, mex_rows=rows)
    assert q_sweep_rows(changed) == ["mexgan-q0-cityscapes", "mexgan-q1-cityscapes",
                                     "mexgan-q2-cityscapes", "fig10-three"]
    metrics = fake_metrics()
    metrics["fig10-three"] = dict(metrics["mexgan-q2-cityscapes"], q=3, tiou=0.35)
    metrics["mexgan-q4-cityscapes"] = dict(metrics["mexgan-cityscapes"], tiou=0.2)
    frame = q_sensitivity(metrics, q_sweep_rows(changed), MAIN)
    assert list(frame["row"]) == ["mexgan-q0-cityscapes", "mexgan-q2-cityscapes",
                                  "fig10-three", "mexgan-cityscapes"]
    assert list(frame["q"]) == [0, 2, 3, 4] and list(frame["tiou"]) == [0.1, 0.3, 0.35, 0.75]


# --- reports/README.md from a fake run ------------------------------------------------------

CONDITIONS = {"data_source": "synthetic", "device": "cpu", "fid_metric": STANDIN,
              "fid_source": "STAND-IN: random-init InceptionV3",
              "vgg_sources": ["STAND-IN: random-init VGG19"], "test_box_seed": 679}


# Per-box scores of the fake run: 4 test boxes; the fill-box floor scores 0.8 on each.
FAKE_BOXES = {"pix2pixhd-cityscapes": [0.4, 0.5, 0.6, 0.5], "mexgan-cityscapes": [0.7, 0.7, 0.7, 0.75],
              "amexgan-cityscapes": [0.9, 0.8, 0.7, 0.8],
              "floor-fill-box-cityscapes": [0.8, 0.8, 0.8, 0.8],
              "floor-mean-mask-cityscapes": [0.6, 0.7, 0.6, 0.7]}


def fake_scores() -> pd.DataFrame:
    return pd.DataFrame([{"row": row, "dataset": "cityscapes", "seed": -1 if "floor" in row else 0,
                          "image": f"im{i}", "label": 26, "tiou": v, "hamm": v}
                         for row, values in FAKE_BOXES.items() for i, v in enumerate(values)])


# Inpainting (Table 3): 3 test images x 2 holes; L1 per hole, SSIM = 1 - L1 / 100.
FAKE_HOLES = {"gl-facade": [30, 34, 40, 44, 20, 24], "gl-amex-facade": [28, 30, 36, 40, 18, 20],
              "floor-mean-fill-facade": [50, 50, 60, 60, 40, 40],
              "floor-biharmonic-facade": [45, 55, 50, 60, 35, 45]}


def fake_inpainting_scores() -> pd.DataFrame:
    return pd.DataFrame([{"row": row, "seed": -1 if "floor" in row else 0,
                          "image": f"facade_{i // 2}", "repeat": i % 2, "ssim": 1 - v / 100,
                          "l1": v, "ssim_image": 1 - v / 400, "l1_image": v / 4}
                         for row, values in FAKE_HOLES.items() for i, v in enumerate(values)])


def write_fake_inpainting(reports, artifacts):
    scores = fake_inpainting_scores()
    scores.to_csv(reports / "inpainting_scores.csv", index=False)
    metrics = {}
    for row, frame in scores.groupby("row"):
        metrics[row] = {m: float(frame[m].mean()) for m in ("ssim", "l1", "ssim_image", "l1_image")}
        metrics[row].update({STANDIN: 0.002, "test_images": 3, "test_holes": 6, "fid_holes": 6})
        if "floor" not in row:
            metrics[row].update(seeds=1, q=4 if "amex" in row else -1)
    (reports / "inpainting_metrics.json").write_text(json.dumps(metrics))
    (reports / "inpainting_run_conditions.json").write_text(json.dumps(
        {"data_source": "synthetic", "device": "cpu", "fid_metric": STANDIN,
         "fid_source": "STAND-IN: random-init InceptionV3", "hole_seed": 679,
         "holes_per_image": 2, "fid_holes_per_image": 2, "size": "48x46", "seeds": [0],
         "fill": [120.0, 110.0, 100.0]}))
    eval_dir = artifacts / "inpainting" / "eval"
    eval_dir.mkdir(parents=True)
    for row in FAKE_HOLES:
        photos = np.full((2, 46, 48, 3), 90, dtype=np.uint8)
        np.savez(eval_dir / f"{row}.npz", completed=photos, truth=photos, masked=photos,
                 holes=np.array([[2, 3, 20, 22], [10, 12, 30, 33]]),
                 names=np.array(["facade_0", "facade_1"]))
    data = artifacts / "inpainting" / "data"
    data.mkdir(parents=True)
    (data / "stats.json").write_text(json.dumps(
        {"train": {"images": 48}, "test": {"images": 3, "test_masks": 6}}))


def write_fake_run(root):
    reports = root / "reports"
    (reports / "train").mkdir(parents=True)
    metrics = fake_metrics()
    for values in metrics.values():
        values["seeds"] = 1
    for row in ("floor-fill-box-cityscapes", "floor-mean-mask-cityscapes"):
        mean = sum(FAKE_BOXES[row]) / 4
        metrics[row] = {"tiou": mean, "hamm": mean, "test_boxes": 4}
    (reports / "metrics.json").write_text(json.dumps(metrics))
    fake_scores().to_csv(reports / "scores.csv", index=False)
    (reports / "run_conditions.json").write_text(json.dumps(CONDITIONS))
    (reports / "study").mkdir()
    (reports / "study" / "summary.md").write_text("## CPU study\n\nfake study answer\n")
    # the huev stage's output: 3 votes, 2 for MExGAN
    pair = ("pix2pixhd-cityscapes", "mexgan-cityscapes")
    votes = [{"participant": "1", "item": f"img{i}", "a_row": pair[0], "b_row": pair[1],
              "choice": choice, "chosen_row": pair[choice == "B"]}
             for i, choice in enumerate("BAB")]
    (reports / "huev.json").write_text(json.dumps(huev_summary(votes, pair)))
    for row in ("mexgan-cityscapes/seed0", "translator-nyu"):
        tsv_dir = reports / "train" / row / "plots" / "metrics" / "train"
        tsv_dir.mkdir(parents=True)
        for name in ("G_adv", "lr"):
            (tsv_dir / f"{name}.tsv").write_text(f"step\t{name}\n0\t1.0\n1\t0.5\n2\t0.25\n")
    eval_dir = reports / "train" / "mexgan-cityscapes" / "seed0" / "plots" / "metrics" / "eval"
    eval_dir.mkdir(parents=True)
    for name in ("tiou", "hamm"):
        (eval_dir / f"{name}.tsv").write_text(f"step\t{name}\n24\t0.1\n48\t0.5\n72\t0.9\n")
    data = root / "artifacts" / "data" / "cityscapes"
    data.mkdir(parents=True)
    (data / "stats.json").write_text(json.dumps(
        {"train": {"images": 24}, "test": {"images": 12, "test_boxes": 11}}))
    write_fake_inpainting(reports, root / "artifacts")
    return reports


@pytest.fixture(scope="module")
def fake_report(tmp_path_factory):
    """The report stage run once on the fake run; its tests only read what it wrote."""
    root = tmp_path_factory.mktemp("fake_report")
    reports = write_fake_run(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["report", "--params", os.path.join(REPO, "params.yaml"),
                                    "--reports", str(reports),
                                    "--artifacts", str(root / "artifacts")])
        report.main()
    return reports


def test_readme_has_every_table_the_conditions_and_the_figures(fake_report):
    text = (fake_report / "README.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Table 4", "Run conditions", "Fig 10"):
        assert f"## {title}" in text, title
    # the paper's layout: a line per row and dataset, a column per metric, each cell ours
    # [its interval over the 4 boxes (1 seed)] · where it stands vs the floor, the paper beside
    # (metrics.json says 0.75; the interval comes from the per-box scores.csv)
    assert ("| dataset | row | seeds | tIOU: ours [95 %] | tIOU: paper | hamm: ours [95 %] | "
            "hamm: paper | FID: ours [95 %] | FID: paper | "
            f"`{STANDIN}`: ours [95 %] | HuEv: ours [95 %] | HuEv: paper |") in text
    assert ("| cityscapes | mexgan-cityscapes | 1 | 0.7500 [0.7000, 0.7375] · below | 0.7493 | "
            "0.7000 [0.7000, 0.7375] · below | 0.7677 | — | 139.14 | 0.001 | "
            "0.6667 [0.0943, 0.9916], 2 / 3 votes | 0.5296 |") in text
    assert "| cityscapes | amexgan-cityscapes | 1 | 0.8000 [0.7250, 0.8750] · cannot tell | " \
        "0.7652 |" in text
    # the floors are rows of their dataset, after its trained rows, without a verdict
    assert "| cityscapes | floor-fill-box-cityscapes | — | 0.8000 [0.8000, 0.8000] | — |" in text
    assert "| cityscapes | floor-mean-mask-cityscapes | — | 0.6500 [0.6000, 0.7000] | — | " \
        "0.6500 [0.6000, 0.7000] | — |" in text
    # Table 2's rows are measured rows now (the fake run has none: missing, paper shown)
    assert "| cityscapes | twosm-cityscapes | — | — | 0.7064 | — | 0.7443 |" in text
    # Table 3: measured rows with per-image intervals; L1 lower is better (vs the floors)
    assert ("| facade | gl-facade | 1 | 0.6800 [0.5800, 0.7800] · better | 0.3827 | "
            "32.00 [22.00, 42.00] · better | 21.59 | — | 63.14 | 0.002 |") in text
    assert "| facade | floor-mean-fill-facade | — | 0.5000 [0.4000, 0.6000] | — | " \
        "50.00 [40.00, 60.00] | — |" in text
    assert "cannot tell (it includes 0)" in text    # the legend under every table
    assert "| gl-amex-facade − gl-facade | facade | l1 | -3.3333 |" in text
    # the long form stays in the CSVs: one line per row x metric, with ours − paper
    long = pd.read_csv(fake_report / "table1.csv")
    mex = long[(long["row"] == "mexgan-cityscapes") & (long["metric"] == "tiou")].iloc[0]
    assert (mex["paper"], mex["ours"], mex["vs_floor"]) == (0.7493, 0.75, "below floor")
    assert mex["difference"] == pytest.approx(0.75 - 0.7493)
    table3 = pd.read_csv(fake_report / "table3.csv")
    assert set(table3["metric"]) >= {"ssim", "l1", "fid", STANDIN, "ssim_image", "l1_image"}
    assert "| facade | gl-facade | 1 |" in (fake_report / "table3.md").read_text()
    assert "48x46, 48 / 3 images, 6 test holes" in text
    assert "figures/grid_facade.png" in text
    assert (fake_report / "figures" / "grid_facade.png").stat().st_size > 0
    assert "## Paired differences" in text
    assert "| mexgan-cityscapes − pix2pixhd-cityscapes | cityscapes | tiou | 0.2125 |" in text
    assert "| pix2pixhd-cityscapes − floor-fill-box-cityscapes | cityscapes | hamm | -0.3000 " \
        "| -0.3750 | -0.2250 | yes |" in text
    assert "## Learning curves of tIOU and hamm" in text
    assert (fake_report / "figures" / "metric_curves_cityscapes.png").stat().st_size > 0
    assert "## CPU study" in text and "fake study answer" in text
    # Table 1's HuEv cells from reports/huev.json (share, Clopper-Pearson interval, votes)
    assert "| 0.3333 [0.0084, 0.9057], 1 / 3 votes | 0.4704 |" in text
    huev = long[long["metric"] == "huev"].set_index("row")
    assert huev.loc["mexgan-cityscapes", "votes"] == "2 / 3"
    assert huev.loc["mexgan-cityscapes", "difference"] == pytest.approx(0.6667 - 0.5296,
                                                                        abs=1e-4)
    assert "| data | synthetic" in text and "| device | cpu | GPU |" in text
    assert "64x32, 24 / 12 images, 11 test boxes" in text
    assert "STAND-IN: random-init VGG19" in text and "STAND-IN: random-init InceptionV3" in text
    assert "Synthetic demo data" in text and "not an FID" in text
    assert "![q-sensitivity](q_sensitivity.png)" in text
    for row in ("mexgan-cityscapes-seed0", "translator-nyu"):
        assert f"![{row}](figures/curves/{row}.png)" in text
        assert (fake_report / "figures" / "curves" / f"{row}.png").stat().st_size > 0
    assert "figures/curves/pix2pixhd-cityscapes-seed0.png" not in text  # no dvclive log


def test_the_report_stage_declares_every_file_it_writes(fake_report):
    with open(os.path.join(REPO, "dvc.yaml")) as f:
        stage = yaml.safe_load(f)["stages"]["report"]
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]}
    inputs = {"metrics.json", "scores.csv", "run_conditions.json", "study/summary.md",
              "study_authors/summary.md", "study_twosm/summary.md", "study_gl/summary.md",
              "inpainting_metrics.json", "inpainting_scores.csv",
              "inpainting_run_conditions.json", "huev.json"}
    for folder, _, files in os.walk(fake_report):
        relative = os.path.relpath(folder, fake_report)
        if relative == "train" or relative.startswith("train" + os.sep):
            continue
        for name in files:
            path = os.path.normpath(os.path.join("reports", relative, name))
            if os.path.normpath(os.path.join(relative, name)) in inputs:
                continue
            assert path in outs or any(path.startswith(o + "/") for o in outs), path


def test_read_curves_reads_dvclive_tsvs(tmp_path):
    tsv_dir = tmp_path / "plots" / "metrics" / "train"
    tsv_dir.mkdir(parents=True)
    (tsv_dir / "G_adv.tsv").write_text("step\tG_adv\n0\t2.0\n4\t1.0\n")
    steps, values = read_curves(str(tmp_path))["train/G_adv"]
    assert list(steps) == [0, 4] and list(values) == [2.0, 1.0]
    assert read_curves(str(tmp_path / "absent")) == {}


def test_dvc_plots_cover_every_training_run():
    with open(os.path.join(REPO, "dvc.yaml")) as f:
        plots = yaml.safe_load(f)["plots"]
    with open(os.path.join(REPO, "params.yaml")) as f:
        params = yaml.safe_load(f)
    defined = {next(iter(p)) for p in plots}
    runs = ([f"translator-{d}" for d in params["datasets"]]
            + [f"{row}/seed{params['seeds'][0]}"
               for row in list(params["baselines"]) + list(params["mex_rows"])
               + list(params["inpainting_rows"])])
    missing = [r for r in runs if f"reports/train/{r}/plots/metrics" not in defined]
    assert not missing, f"add to dvc.yaml plots: {missing}"
    assert "reports/q_sensitivity.csv" in defined


# --- stages.check_metrics -----------------------------------------------------------------

def test_identical_metrics_pass():
    out = io.StringIO()
    assert metrics_gate.check(fake_metrics(), fake_metrics(), out=out)
    assert "metrics reproduced: all 25 values of 5 rows match exactly" in out.getvalue()


def test_a_changed_metric_fails_with_row_metric_and_both_values():
    reproduced = fake_metrics()
    reproduced["mexgan-cityscapes"]["tiou"] = 0.7500000000000001
    out = io.StringIO()
    assert not metrics_gate.check(fake_metrics(), reproduced, out=out)
    assert ("metrics not reproduced: mexgan-cityscapes.tiou committed 0.75 "
            "reproduced 0.7500000000000001") in out.getvalue().splitlines()
    assert "1 of 25 committed metrics not reproduced exactly" in out.getvalue()


def test_a_tolerance_accepts_tiny_differences_only():
    reproduced = fake_metrics()
    reproduced["mexgan-cityscapes"]["tiou"] += 1e-12
    assert metrics_gate.differences(fake_metrics(), reproduced, tolerance=1e-9) == []
    reproduced["mexgan-cityscapes"]["hamm"] += 1e-6
    assert metrics_gate.differences(fake_metrics(), reproduced, tolerance=1e-9) == [
        "metrics not reproduced: mexgan-cityscapes.hamm committed 0.7 "
        f"reproduced {0.7 + 1e-6!r}"]


def test_missing_and_extra_rows_and_metrics_fail():
    committed, reproduced = fake_metrics(), fake_metrics()
    del reproduced["amexgan-cityscapes"]
    reproduced["new-row"] = {"tiou": 0.5}
    del reproduced["mexgan-cityscapes"]["q"]
    lines = metrics_gate.differences(committed, reproduced)
    assert "metrics not reproduced: amexgan-cityscapes.tiou committed 0.8 reproduced (missing)" \
        in lines
    assert "metrics not reproduced: new-row.tiou committed (missing) reproduced 0.5" in lines
    assert "metrics not reproduced: mexgan-cityscapes.q committed 4 reproduced (missing)" in lines
    assert len(lines) == 5 + 1 + 1


def test_nan_matches_only_nan():
    assert metrics_gate.differences({"r": {"x": math.nan}}, {"r": {"x": math.nan}}) == []
    assert metrics_gate.differences({"r": {"x": math.nan}}, {"r": {"x": 0.0}}) == [
        "metrics not reproduced: r.x committed nan reproduced 0.0"]
    assert metrics_gate.differences({"r": {"x": "a"}}, {"r": {"x": "b"}}) == [
        "metrics not reproduced: r.x committed 'a' reproduced 'b'"]


def test_cli_exit_status(tmp_path, monkeypatch, capsys):
    committed, reproduced = tmp_path / "old.json", tmp_path / "new.json"
    committed.write_text(json.dumps(fake_metrics()))
    reproduced.write_text(json.dumps(fake_metrics()))
    argv = ["check_metrics", "--committed", str(committed), "--reproduced", str(reproduced)]
    monkeypatch.setattr(sys, "argv", argv)
    check_metrics.main()
    changed = fake_metrics()
    changed["pix2pixhd-cityscapes"]["hamm"] = 0.61
    reproduced.write_text(json.dumps(changed))
    with pytest.raises(SystemExit) as exit_info:
        check_metrics.main()
    assert exit_info.value.code == 1
    assert ("metrics not reproduced: pix2pixhd-cityscapes.hamm committed 0.6 reproduced 0.61"
            in capsys.readouterr().out)
