"""HuEv (pipeline.apps.huev, huev_votes, huev_results): study items from the evaluate stage's
per-box results, the SQLite vote store (invitation codes, trials that a restart removed), the
binomial aggregation (votes on other pairs kept apart), Table 1's HuEv lines and the huev stage."""
import json
import os
import random
import sqlite3
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pipeline.apps import huev, huev_results, huev_votes
from pipeline.config.loading import load_params
from pipeline.config.sections import ParamsError
from pipeline.config.validation import check_huev_rows, parse_params
from pipeline.evaluation.evaluation import save_results
from pipeline.data.inputs import EditBox
from pipeline.evaluation.reports.tables import TABLE_COLUMNS
from tests.tiny_project import REPO, tiny_params, write_params

ROWS = ("pix2pixhd-cityscapes", "mexgan-cityscapes")
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8)


def fake_results(folder, rows=ROWS, n=4, boxes=None):
    """Per-box results as the evaluate stage writes them (pipeline.evaluation.evaluation.save_results)."""
    labels = np.zeros((n, 6, 8), dtype=np.uint16)
    split = SimpleNamespace(names=[f"img{i}" for i in range(n)], labels=labels)
    spec = SimpleNamespace(palette=PALETTE)
    items = [(i, EditBox(f"img{i}", 1 + i % 2, boxes or (1, 1, 5, 4))) for i in range(n)]
    for k, row in enumerate(rows):
        fused = np.full((n, 6, 8, 3), 10 * k, dtype=np.uint8)
        fused[:, 0, 0] = (250, 5 * k, 0)  # near red
        save_results(str(folder), row, SimpleNamespace(spec=spec, split=split, items=items),
                     fused)
    return items


def test_items_pair_the_two_rows_results_on_the_same_boxes(tmp_path):
    fake_results(tmp_path)
    items = huev.load_items(str(tmp_path), ROWS, PALETTE)
    assert [i.key for i in items] == ["img0", "img1", "img2", "img3"]
    first = items[1]
    assert first.box == (1, 1, 5, 4) and first.label == 2
    # the incomplete map: the box painted in the target label's colour, the rest untouched
    assert (first.incomplete[1:4, 1:5] == PALETTE[2]).all()
    assert (first.incomplete[0] == first.complete[0]).all()
    # results: the fused colours read back as labels (nearest palette colour), in the palette
    assert (first.results[ROWS[0]][2:] == PALETTE[0]).all()
    assert (first.results[ROWS[1]][1:] == PALETTE[0]).all()  # (10, 10, 10): black
    assert (first.results[ROWS[1]][0, 0] == PALETTE[1]).all()  # (250, 5, 0): red
    assert len(huev.load_items(str(tmp_path), ROWS, PALETTE, limit=2)) == 2


def test_items_refuse_missing_or_mismatched_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro evaluate"):
        huev.load_items(str(tmp_path), ROWS, PALETTE)
    fake_results(tmp_path, rows=ROWS[:1])
    fake_results(tmp_path, rows=ROWS[1:], boxes=(0, 0, 2, 2))
    with pytest.raises(ValueError, match="not scored on the same test boxes"):
        huev.load_items(str(tmp_path), ROWS, PALETTE)
    with pytest.raises(ValueError, match="two different rows"):
        huev.load_items(str(tmp_path), (ROWS[0], ROWS[0]), PALETTE)


def make_store(tmp_path, n=4):
    fake_results(tmp_path, n=n)
    items = huev.load_items(str(tmp_path), ROWS, PALETTE)
    return huev_votes.VoteStore(str(tmp_path / "votes.sqlite")), items


def test_join_shuffles_items_and_sides_per_participant(tmp_path):
    store, items = make_store(tmp_path, n=12)
    orders, sides = set(), set()
    for seed in range(6):
        token = store.join(store.invite(1)[0], items, ROWS, rng=random.Random(seed))
        trials = []
        progress = store.progress(token)
        assert progress["done"] == 0 and progress["total"] == 12
        with sqlite3.connect(store.path) as db:
            trials = db.execute("SELECT item, a_row FROM trials t JOIN participants p ON "
                                "p.id = t.participant_id WHERE p.token = ? ORDER BY position",
                                (token,)).fetchall()
        assert sorted(item for item, _ in trials) == sorted(i.key for i in items)
        orders.add(tuple(item for item, _ in trials))
        sides.add(tuple(a for _, a in sorted(trials)))
    assert len(orders) > 1 and len(sides) > 1  # random order and random A / B per participant
    assert store.path and os.path.exists(store.path)
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_vote_names_a_trial_and_a_letter_and_is_stored_once(tmp_path):
    store, items = make_store(tmp_path)
    token = store.join(store.invite(1)[0], items, ROWS)
    trial = store.progress(token)["next"]["trial"]
    rows = store.trial(token, trial)
    progress = store.vote(token, trial, "B", response_ms=900)
    assert progress["done"] == 1 and progress["next"]["trial"] != trial
    [vote] = store.votes()
    assert vote["chosen_row"] == rows["B"] and vote["choice"] == "B"
    assert vote["participant"] == 1 and vote["response_ms"] == 900  # an id, never the token
    refused = [(token, trial, "A", None, 409),           # replayed
               (token, trial + "x", "A", None, 404),     # forged trial id
               ("nobody", trial, "A", None, 401),        # unknown participant
               (None, trial, "A", None, 401),            # no participant
               (token, trial, "C", None, 422),           # malformed choice
               (token, trial, "A", -5, 422),             # malformed response time
               (token, "", "A", None, 422)]              # no trial
    for who, which, choice, ms, status in refused:
        with pytest.raises(huev_votes.VoteError) as err:
            store.vote(who, which, choice, response_ms=ms)
        assert err.value.status == status, (which, choice, ms)
    other = store.join(store.invite(1)[0], items, ROWS)
    other_trial = store.progress(other)["next"]["trial"]
    with pytest.raises(huev_votes.VoteError) as err:  # another participant's trial: forged
        store.vote(token, other_trial, "A")
    assert err.value.status == 404
    assert len(store.votes()) == 1  # nothing stored for a refused vote


def test_invitation_codes_give_one_ballot_each(tmp_path):
    store, items = make_store(tmp_path)
    codes = store.invite(3)
    assert len(set(codes)) == 3 and store.invitation_counts() == (3, 0)
    assert all(len(c) == 11 and c[5] == "-" and set(c) - {"-"} <= set(huev_votes.CODE_ALPHABET)
               for c in codes)
    for code, words in ((None, "is needed"), ("", "is needed"), ("abc", "not an invitation"),
                        ("22222-22222", "unknown")):
        with pytest.raises(huev_votes.VoteError, match=words) as err:
            store.join(code, items, ROWS)
        assert err.value.status == 403
    assert store.invitation_counts() == (3, 0)  # nothing stored for a refused join
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM participants").fetchone()[0] == 0
    token = store.join(codes[0], items, ROWS)
    # the same code again (typed in capitals, without the dash): the same ballot
    assert store.join(codes[0].upper().replace("-", ""), items, ROWS) == token
    assert store.join(codes[1], items, ROWS) != token
    assert store.invitation_counts() == (1, 2)


def test_trials_a_restart_removed_are_skipped_and_refused(tmp_path):
    store, items = make_store(tmp_path, n=4)
    token = store.join(store.invite(1)[0], items, ROWS, rng=random.Random(0))
    with sqlite3.connect(store.path) as db:
        trials = dict(db.execute("SELECT item, trial FROM trials").fetchall())
    # restarted with huev.items = 2: only img0 and img1 are served
    served = huev_votes.VoteStore(store.path, items=["img0", "img1"], rows=ROWS)
    progress = served.progress(token)
    assert progress["total"] == 2 and progress["next"]["item"] in ("img0", "img1")
    for call in (lambda: served.vote(token, trials["img3"], "A"),
                 lambda: served.trial(token, trials["img3"])):
        with pytest.raises(huev_votes.VoteError, match="no longer part of the study") as err:
            call()
        assert err.value.status == 410
    assert served.votes() == []
    served.vote(token, trials["img1"], "B")
    assert served.progress(token)["done"] == 1 and store.progress(token)["done"] == 1
    # restarted on another pair of rows: none of the participant's trials is served
    other_pair = huev_votes.VoteStore(store.path, items=list(trials), rows=(ROWS[0], "other"))
    assert other_pair.progress(token) == {"done": 0, "total": 0, "next": None}
    with pytest.raises(huev_votes.VoteError) as err:
        other_pair.vote(token, trials["img0"], "A")
    assert err.value.status == 410 and len(store.votes()) == 1


def test_votes_survive_a_restart_and_export_to_csv(tmp_path):
    store, items = make_store(tmp_path)
    token = store.join(store.invite(1)[0], items, ROWS)
    for choice in "ABA":
        store.vote(token, store.progress(token)["next"]["trial"], choice)
    del store  # no close, no checkpoint: a new store on the same file sees every vote
    again = huev_votes.VoteStore(str(tmp_path / "votes.sqlite"))
    assert [v["choice"] for v in again.votes()] == list("ABA")
    assert again.progress(token)["done"] == 3
    path = str(tmp_path / "out" / "votes.csv")
    assert again.export(path) == (3, None)  # still open
    votes = huev_votes.read_votes_csv(path)
    assert [v["choice"] for v in votes] == list("ABA")
    assert token not in open(path).read()


def test_read_votes_refuses_inconsistent_files(tmp_path):
    path = tmp_path / "votes.csv"
    header = ",".join(huev_votes.VOTE_COLUMNS)
    path.write_text(f"{header}\n1,img0,r1,r2,A,r2,t,\n")
    with pytest.raises(ValueError, match="line 2"):
        huev_votes.read_votes_csv(str(path))
    path.write_text(f"{header}\n1,img0,r1,r2,A,r1,t,\n1,img0,r2,r1,A,r2,t,\n")
    with pytest.raises(ValueError, match="voted twice"):
        huev_votes.read_votes_csv(str(path))
    path.write_text("who,what\n")
    with pytest.raises(ValueError, match="header"):
        huev_votes.read_votes_csv(str(path))


def votes_of(choices):
    """(participant, row chosen) pairs -> vote dicts (A is always ROWS[0])."""
    return [{"participant": str(p), "item": f"img{i}", "a_row": ROWS[0], "b_row": ROWS[1],
             "choice": "A" if row == ROWS[0] else "B", "chosen_row": row}
            for i, (p, row) in enumerate(choices)]


def test_preference_share_interval_and_counts():
    votes = votes_of([(1, ROWS[1])] * 7 + [(1, ROWS[0])] * 3 + [(2, ROWS[1])] * 2)
    lines = {line["row"]: line for line in huev_results.preference(votes, ROWS)}
    mex = lines[ROWS[1]]
    assert mex["votes_for"] == 9 and mex["votes"] == 12 and mex["participants"] == 2
    assert mex["share"] == pytest.approx(0.75)
    # Clopper-Pearson 95 % for 9 / 12 (R: binom.test(9, 12)$conf.int)
    assert mex["ci_low"] == pytest.approx(0.4281, abs=1e-4)
    assert mex["ci_high"] == pytest.approx(0.9451, abs=1e-4)
    assert mex["share_mean_of_participants"] == pytest.approx((0.7 + 1.0) / 2)
    assert lines[ROWS[0]]["share"] == pytest.approx(0.25)


def test_votes_on_another_pair_count_for_their_own_pair():
    """huev.rows changed during a study: each vote counts for the rows stored with it."""
    amex = "amexgan-cityscapes"
    ours = votes_of([(1, ROWS[1])] * 3 + [(2, ROWS[0])])
    other = [{"participant": "3", "item": f"img{i}", "a_row": amex, "b_row": ROWS[0],
              "choice": "A", "chosen_row": amex} for i in range(5)]
    lines = {line["row"]: line for line in huev_results.preference(ours + other, ROWS)}
    assert lines[ROWS[1]]["votes_for"] == 3 and lines[ROWS[1]]["votes"] == 4
    assert lines[ROWS[1]]["participants"] == 2 and lines[ROWS[1]]["share"] == 0.75
    result = huev_results.summary(ours + other, ROWS)
    assert result["votes"] == 4 and result["participants"] == 2
    assert result["other_pairs"] == {f"{amex} vs {ROWS[0]}": 5}
    assert "Not counted: 5 votes on amexgan-cityscapes vs pix2pixhd-cityscapes" in \
        huev_results.markdown(result)
    swapped = {line["row"]: line for line in huev_results.preference(ours + other, (ROWS[0], amex))}
    assert swapped[amex]["votes_for"] == 5 and swapped[amex]["votes"] == 5
    assert huev_results.summary(other, ROWS)["votes"] == 0  # only other pairs: "no votes yet" here
    assert "no votes yet" in huev_results.markdown(huev_results.summary(other, ROWS))


def table1():
    return pd.DataFrame([{"row": r, "metric": "tiou", "paper": 0.7, "ours": 0.1} for r in ROWS]
                        + [{"row": "floor-fill-box-cityscapes", "metric": "tiou", "ours": 0.8}],
                        columns=TABLE_COLUMNS)


def test_table1_says_no_votes_instead_of_a_number():
    summary = huev_results.summary([], ROWS)
    frame = huev_results.table1_with_huev(table1(), summary)
    lines = frame[frame["metric"] == "huev"]
    assert list(lines["row"]) == list(ROWS)
    assert lines["ours"].isna().all() and (lines["votes"] == huev_results.NO_VOTES).all()
    assert list(lines["paper"]) == [0.4704, 0.5296]
    assert list(frame["row"])[:2] == [ROWS[0], ROWS[0]]  # after the row's own lines
    assert "no votes yet" in huev_results.markdown(summary)


def test_table1_huev_lines_carry_share_interval_and_votes():
    summary = huev_results.summary(votes_of([(1, ROWS[1])] * 3 + [(2, ROWS[0])]), ROWS)
    frame = huev_results.table1_with_huev(table1(), summary)
    line = frame[(frame["metric"] == "huev") & (frame["row"] == ROWS[1])].iloc[0]
    assert line["ours"] == pytest.approx(0.75) and line["votes"] == "3 / 4"
    assert line["difference"] == pytest.approx(0.75 - 0.5296)
    assert 0 < line["ci_low"] < 0.75 < line["ci_high"] <= 1
    assert "| mexgan-cityscapes | 0.5296 | 0.7500 |" in huev_results.markdown(summary)


def test_params_huev_section_is_checked():
    params = load_params(os.path.join(REPO, "params.yaml"))
    assert params.huev.rows == ROWS and check_huev_rows(params) == "cityscapes"
    for profile in ("params_paper.yaml", "params_study.yaml"):
        assert load_params(os.path.join(REPO, profile)).huev.rows == ROWS
    for bad, match in (({"rows": ["a"]}, "two different row names"),
                       ({"rows": [ROWS[0], ROWS[0]]}, "two different row names"),
                       ({"items": -1}, "huev.items"), ({"colour": 1}, "unknown key")):
        raw = tiny_params()
        raw["huev"] = {**raw["huev"], **bad}
        with pytest.raises(ParamsError, match=match):
            parse_params(raw)
    raw = tiny_params()
    raw["huev"]["rows"] = [ROWS[0], "mexgan-nyu"]
    with pytest.raises(ParamsError, match="one dataset"):
        check_huev_rows(parse_params(raw))


def test_huev_stage_writes_the_summary_from_the_votes_file(tmp_path):
    raw = tiny_params()
    raw["huev"]["votes"] = str(tmp_path / "votes.csv")
    params = write_params(tmp_path / "params.yaml", raw)
    huev_votes.write_votes_csv(raw["huev"]["votes"], votes_of([(1, ROWS[1]), (2, ROWS[0]),
                                                         (2, ROWS[1])]))
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-m", "stages.huev", "--params", params,
                           "--reports", str(tmp_path / "reports")], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "reports" / "huev.json").read_text())
    assert result["votes"] == 3 and result["participants"] == 2
    assert result["preference"][ROWS[1]]["votes_for"] == 2
    assert "3 votes from 2 participants" in (tmp_path / "reports" / "huev.md").read_text()
