"""The paper's layout of Tables 1-4 (pipeline.evaluation.paper_tables): a line per row and dataset, a
column per metric, each cell ours [95 % interval] · verdict against the floor, the paper beside;
rendered from the long form, which stays in the CSVs."""
import pandas as pd

from pipeline.evaluation.paper_tables import paper_table_markdown, rerender, wide_frame, write_paper_table
from pipeline.evaluation.reports.tables import TABLE_COLUMNS


def long_form():
    lines = [
        ("pix2pixhd-cityscapes", "tiou", 0.735, 0.5, 0.45, 0.55, "3", "below floor"),
        ("pix2pixhd-cityscapes", "fid", 139.47, None, None, None, "3", ""),
        ("pix2pixhd-cityscapes", "fid_standin_random_inception_64d", None, 0.00075, None,
         None, "3", ""),
        ("mexgan-nyu", "tiou", 0.4851, 0.81, 0.70, 0.90, "3", "not distinguishable"),
        ("mexgan-nyu", "fid", 137.44, 140.123, None, None, "3", ""),
        ("floor-fill-box-cityscapes", "tiou", None, 0.8, 0.78, 0.82, None, ""),
        ("floor-fill-box-nyu", "tiou", None, 0.77, 0.68, 0.85, None, ""),
    ]
    return pd.DataFrame([dict(zip(TABLE_COLUMNS, line + (None,))) for line in lines],
                        columns=TABLE_COLUMNS)


def test_one_line_per_row_and_dataset_with_its_floors_and_a_column_per_metric():
    frame = wide_frame(long_form())
    assert list(frame["row"]) == ["pix2pixhd-cityscapes", "floor-fill-box-cityscapes",
                                  "mexgan-nyu", "floor-fill-box-nyu"]
    assert list(frame["dataset"]) == ["cityscapes", "cityscapes", "nyu", "nyu"]
    assert list(frame.columns) == [
        "dataset", "row", "seeds", "tIOU: ours [95 %]", "tIOU: paper", "FID: ours [95 %]",
        "FID: paper", "`fid_standin_random_inception_64d`: ours [95 %]"]  # no paper: no column
    pix = frame.iloc[0]
    assert pix["tIOU: ours [95 %]"] == "0.5000 [0.4500, 0.5500] · below"
    assert pix["tIOU: paper"] == "0.7350" and pix["seeds"] == "3"
    assert pix["FID: ours [95 %]"] == "—" and pix["FID: paper"] == "139.47"
    assert pix["`fid_standin_random_inception_64d`: ours [95 %]"] == "0.00075"
    nyu = frame.iloc[2]
    assert nyu["tIOU: ours [95 %]"] == "0.8100 [0.7000, 0.9000] · cannot tell"
    assert nyu["FID: ours [95 %]"] == "140.12"   # FID: 2 decimals, no interval
    floor = frame.iloc[1]
    assert floor["tIOU: ours [95 %]"] == "0.8000 [0.7800, 0.8200]" and floor["seeds"] == "—"
    assert floor["FID: ours [95 %]"] == ""       # a floor has no FID line


def test_inpainting_verdicts_and_huev_votes():
    long = pd.DataFrame([
        {"row": "gl-facade", "metric": "l1", "paper": 21.59, "ours": 32.0, "ci_low": 22.0,
         "ci_high": 42.0, "seeds": "1", "vs_floor": "better than floor"},
        {"row": "gl-facade", "metric": "ssim", "paper": 0.3827, "ours": 0.1, "ci_low": 0.05,
         "ci_high": 0.12, "seeds": "1", "vs_floor": "worse than floor"},
        {"row": "mexgan-cityscapes", "metric": "huev", "paper": 0.5296, "ours": None,
         "ci_low": None, "ci_high": None, "seeds": None, "vs_floor": "",
         "votes": "no votes yet"},
        {"row": "pix2pixhd-cityscapes", "metric": "huev", "paper": 0.4704, "ours": 0.25,
         "ci_low": 0.1, "ci_high": 0.5, "seeds": None, "vs_floor": "", "votes": "1 / 4"}])
    text = paper_table_markdown(long)
    assert "| facade | gl-facade | 1 | 32.00 [22.00, 42.00] · better | 21.59 | " \
        "0.1000 [0.0500, 0.1200] · worse | 0.3827 |" in text
    assert "| cityscapes | mexgan-cityscapes | — |" in text and "| no votes yet | 0.5296 |" in text
    assert "| 0.2500 [0.1000, 0.5000], 1 / 4 votes | 0.4704 |" in text
    assert "cannot tell (it includes 0)" in text


def test_the_csv_keeps_the_long_form_and_a_finished_tables_md_is_rendered_again(tmp_path):
    stem = str(tmp_path / "table1")
    write_paper_table(long_form(), stem, "Table 1", "a note")
    long = pd.read_csv(stem + ".csv")
    assert list(long.columns) == TABLE_COLUMNS and len(long) == 7
    first = open(stem + ".md").read()
    assert first.startswith("# Table 1\n\na note\n\n| dataset | row | seeds |")
    rerender(stem, "Table 1", "a note")
    assert open(stem + ".md").read() == first
