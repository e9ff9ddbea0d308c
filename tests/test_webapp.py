"""The web app's API (pipeline.apps.webapp) on a tiny project: the study (invitation codes, trials,
images, votes and every refused-vote case, rate limits, concurrent votes, restarts that keep,
remove or change items), blinding (the study and the editor are never served together), body
limits, the editor (the same code path as the `edit` command), and `python -m stages.serve`
(--invite, --export, a study that imports no torch, a real server's memory under decompression
bombs and oversized bodies)."""
import base64
import dataclasses
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():  # starlette prefers httpx2; httpx is what requirements pin
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from pipeline.apps import webapp, webapp_editor
from pipeline.apps.editing import Edit, load_editor
from pipeline.apps.huev_votes import VoteStore
from pipeline.apps.webapp import create_app
from pipeline.apps.webapp_editor import EditorPage, build_editor
from pipeline.apps.webapp_http import ApiError, BodyLimit, RateLimit, RateLimiter
from pipeline.apps.webapp_study import build_study
from tests.huev_project import ROWS, Server, make_project
from tests.tiny_project import REPO

EDITOR_ROUTES = [("GET", "/editor"), ("GET", "/api/editor/info"), ("GET", "/api/editor/maps/0"),
                 ("POST", "/api/editor/preview"), ("POST", "/api/editor/edit"),
                 ("GET", "/static/editor.js")]
STUDY_ROUTES = [("GET", "/study"), ("GET", "/api/study/info"), ("POST", "/api/study/join"),
                ("GET", "/api/study/next"), ("POST", "/api/study/vote"),
                ("GET", "/api/study/images/x/A"), ("GET", "/static/study.js")]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("huev"))


@pytest.fixture
def study(project, tmp_path):
    return build_study(project.params, str(tmp_path / "votes.sqlite"), project.results)


@pytest.fixture
def app(study):
    return create_app(study)


@pytest.fixture
def editor_app(project):
    return create_app(editor=build_editor(project.params_path, ROWS[1], project.data_root))


def client(app):
    return TestClient(app)


def joined(app, store, code=None):
    """A new client that joined with a fresh invitation code (or `code`); (client, progress)."""
    c = client(app)
    answer = c.post("/api/study/join", json={"code": code or store.invite(1)[0]})
    assert answer.status_code == 200, answer.text
    return c, answer.json()


def count(store, table):
    with sqlite3.connect(store.path) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_study_serves_trials_without_naming_rows(app, study, project):
    c = client(app)
    assert c.get("/api/study/next").status_code == 401  # not joined yet
    for body, words in (({}, "invitation code (xxxxx-xxxxx) is needed"),
                        ({"code": "abcde-fghjk"}, "unknown invitation code"),
                        ({"code": "x" * 500}, "not an invitation code")):
        refused = c.post("/api/study/join", json=body)
        assert refused.status_code == 403 and words in refused.json()["error"], refused.text
    assert count(study.store, "participants") == 0 and "set-cookie" not in refused.headers
    code = study.store.invite(1)[0]
    joined_ = c.post("/api/study/join", json={"code": code.upper().replace("-", " ")})
    assert joined_.status_code == 200 and "httponly" in joined_.headers["set-cookie"].lower()
    progress = joined_.json()
    assert progress == {"done": 0, "total": project.items, "finished": False,
                        "trial": progress["trial"]}
    for kind in ("complete", "incomplete", "A", "B"):
        image = c.get(f"/api/study/images/{progress['trial']}/{kind}")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).size == (32, 16)
        assert not any(row.encode() in image.content for row in ROWS)  # no metadata
    assert c.get(f"/api/study/images/{progress['trial']}/pix2pixhd-cityscapes").status_code == 404
    home = c.get("/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/study"
    for page in ("/study", "/static/study.js", "/static/style.css", "/api/study/info"):
        answer = c.get(page)
        assert answer.status_code == 200, page
        assert not any(row in answer.text for row in ROWS), page
    assert not any(row in joined_.text for row in ROWS)
    again = c.post("/api/study/join").json()  # a returning participant (cookie) continues
    assert again["trial"] == progress["trial"]
    # the same code in another browser continues the same ballot: one ballot per code
    elsewhere = client(app).post("/api/study/join", json={"code": code}).json()
    assert elsewhere["trial"] == progress["trial"]
    assert count(study.store, "participants") == 1


def test_the_study_and_the_editor_are_never_served_together(app, editor_app, study):
    """Each unblinding path is closed: in study mode nothing of the editor exists (its page,
    its model's name, its maps, edits, previews, its script), and the other way round."""
    c, progress = joined(app, study.store)
    for method, path in EDITOR_ROUTES:
        answer = c.request(method, path, json={} if method == "POST" else None)
        assert answer.status_code == 404, (path, answer.text)
        assert set(answer.json()) == {"error"}
        assert not any(row in answer.text for row in ROWS)
    e = client(editor_app)
    assert e.get("/api/editor/info").json()["row"] == ROWS[1]  # the editor does name it
    for method, path in STUDY_ROUTES:
        assert e.request(method, path).status_code == 404, path
    assert e.get("/", follow_redirects=False).headers["location"] == "/editor"
    with pytest.raises(ValueError, match="unblind"):
        create_app(study, EditorPage(editor=None, maps=[]))
    with pytest.raises(ValueError, match="either the study or the editor"):
        create_app()


def test_votes_are_stored_and_refused_votes_store_nothing(app, study):
    c, progress = joined(app, study.store)
    other, other_progress = joined(app, study.store)
    trial, other_trial = progress["trial"], other_progress["trial"]
    stored = c.post("/api/study/vote", json={"trial": trial, "choice": "A", "response_ms": 800})
    assert stored.status_code == 201 and stored.json()["done"] == 1
    refused = [
        (c, {"trial": trial, "choice": "B"}, 409),                        # replayed
        (c, {"trial": other_trial, "choice": "A"}, 404),                  # someone else's trial
        (c, {"trial": "made-up", "choice": "A"}, 404),                    # forged trial id
        (c, {"trial": trial, "choice": "C"}, 422),                        # not A / B
        (c, {"trial": trial, "choice": "A", "row": ROWS[1]}, 422),        # naming a row
        (c, {"trial": trial, "choice": 1}, 422),                          # wrong type
        (c, {"choice": "A"}, 422),                                        # no trial
        (c, {"trial": trial, "choice": "A", "response_ms": -1}, 422),     # bad time
        (c, [trial, "A"], 422),                                           # not an object
        (client(app), {"trial": trial, "choice": "A"}, 401),              # no participant
    ]
    for who, body, status in refused:
        answer = who.post("/api/study/vote", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"], body
    json_type = {"content-type": "application/json"}
    malformed = [(b"{not json", json_type, 422, "not JSON"),
                 ('{"trial": "é"}'.encode("latin-1"), json_type, 422, "not UTF-8"),
                 (b"[" * 5000 + b"]" * 5000, json_type, 422, "nests too deeply"),
                 (json.dumps({"trial": trial, "choice": "B"}).encode(),
                  {"content-type": "text/plain"}, 415, "application/json")]
    for content, headers, status, words in malformed:
        answer = c.post("/api/study/vote", content=content, headers=headers)
        assert answer.status_code == status, (content[:20], answer.text)
        assert list(answer.json()) == ["error"] and words in answer.json()["error"]
    forged_cookie = client(app)
    forged_cookie.cookies.set("huev_participant", "x" * 32)
    assert forged_cookie.post("/api/study/vote",
                              json={"trial": other_trial, "choice": "A"}).status_code == 401
    assert len(study.store.votes()) == 1  # only the accepted vote


def test_join_and_votes_are_rate_limited_per_address(study):
    now = [0.0]
    app = create_app(study, rate_limits={"join": RateLimit(burst=2, per_second=0.1),
                                         "vote": RateLimit(burst=3, per_second=1.0)},
                     clock=lambda: now[0])
    c = client(app)
    assert c.post("/api/study/join", json={"code": "abcde-fghjk"}).status_code == 403
    code = study.store.invite(1)[0]
    assert c.post("/api/study/join", json={"code": code}).status_code == 200
    # the third join within the burst of 2: refused before the code is looked at
    limited = c.post("/api/study/join", json={"code": study.store.invite(1)[0]})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "10"  # 1 / 0.1 s
    assert "too many join requests" in limited.json()["error"]
    assert count(study.store, "participants") == 1  # nothing stored for the refused join
    # another address has its own bucket
    other = TestClient(app, client=("10.0.0.2", 50000))
    assert other.post("/api/study/join", json={"code": study.store.invite(1)[0]}).status_code \
        == 200
    now[0] += 10  # one token back
    assert c.post("/api/study/join").status_code == 200
    for k in range(3):
        trial = c.get("/api/study/next").json()["trial"]
        assert c.post("/api/study/vote", json={"trial": trial, "choice": "A"}).status_code == 201
    trial = c.get("/api/study/next").json()["trial"]
    limited = c.post("/api/study/vote", json={"trial": trial, "choice": "A"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert len(study.store.votes()) == 3  # the refused vote is not stored
    now[0] += 0.5  # half a token: still refused, 0.5 s to wait -> Retry-After 1
    assert c.post("/api/study/vote", json={"trial": trial, "choice": "A"}).status_code == 429
    now[0] += 0.5
    assert c.post("/api/study/vote", json={"trial": trial, "choice": "A"}).status_code == 201


def test_rate_limiter_refills_and_forgets_full_buckets():
    now = [0.0]
    limiter = RateLimiter({"vote": RateLimit(burst=2, per_second=0.5)}, clock=lambda: now[0],
                          max_keys=2)
    assert [limiter.take("vote", "a") for _ in range(3)] == [0, 0, 2.0]  # 1 token / 0.5 per s
    now[0] = 1.0  # half a token refilled: one more second to wait
    assert limiter.take("vote", "a") == pytest.approx(1.0)
    limiter.take("vote", "b")
    now[0] = 10.0  # both refilled: the third address makes the map forget full buckets
    limiter.take("vote", "c")
    assert set(limiter.buckets) == {("vote", "c")}


def test_concurrent_votes(app, study):
    """Eight participants vote at once, each also firing the same vote twice in parallel: every
    first vote is stored, every duplicate refused with 409, nothing lost or doubled."""
    participants = [joined(app, study.store) for _ in range(8)]
    answers, barrier = [], threading.Barrier(16)

    def cast(p, trial):
        barrier.wait()
        answers.append(p.post("/api/study/vote", json={"trial": trial, "choice": "B"})
                       .status_code)

    threads = [threading.Thread(target=cast, args=(p, progress["trial"]))
               for p, progress in participants for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201] * 8 + [409] * 8
    votes = study.store.votes()
    assert len(votes) == 8 and len({v["participant"] for v in votes}) == 8


def test_a_restart_loses_no_vote(project, tmp_path):
    database = str(tmp_path / "votes.sqlite")
    study = build_study(project.params, database, project.results)
    first, progress = joined(create_app(study), study.store)
    token = first.cookies["huev_participant"]
    trial = progress["trial"]
    next_trial = first.post("/api/study/vote", json={"trial": trial, "choice": "A"}).json()
    # a new server process on the same database: the vote is there, the participant continues
    second = client(create_app(build_study(project.params, database, project.results)))
    second.cookies.set("huev_participant", token)
    progress = second.get("/api/study/next").json()
    assert progress["done"] == 1 and progress["trial"] == next_trial["trial"]
    assert second.post("/api/study/vote", json={"trial": trial, "choice": "B"}).status_code == 409


def restarted(project, database, tmp_path, **huev):
    """A client of a server restarted with other huev params (rows: results copied from
    mexgan-cityscapes for a third row)."""
    results = project.results
    if "rows" in huev:
        results = str(tmp_path / "results")
        shutil.copytree(project.results, results, dirs_exist_ok=True)
        for row in huev["rows"]:
            if not os.path.exists(os.path.join(results, f"{row}.npz")):
                shutil.copy(os.path.join(results, f"{ROWS[1]}.npz"),
                            os.path.join(results, f"{row}.npz"))
    params = dataclasses.replace(project.params,
                                 huev=dataclasses.replace(project.params.huev, **huev))
    study = build_study(params, database, results)
    return create_app(study), study


def test_a_restart_that_removes_items_refuses_their_votes(project, tmp_path):
    database = str(tmp_path / "votes.sqlite")
    study = build_study(project.params, database, project.results)
    c, _ = joined(create_app(study), study.store)
    token = c.cookies["huev_participant"]
    with sqlite3.connect(database) as db:
        trials = dict(db.execute("SELECT item, trial FROM trials").fetchall())
    app, smaller = restarted(project, database, tmp_path, items=2)
    kept = [item.key for item in smaller.items]  # the 2 the secret draws
    assert len(kept) == 2 and set(kept) < set(trials)
    removed = [key for key in trials if key not in kept]
    c = client(app)
    c.cookies.set("huev_participant", token)
    progress = c.get("/api/study/next").json()
    assert progress["total"] == 2 and progress["trial"] in {trials[k] for k in kept}
    for key in removed[:2]:
        answer = c.post("/api/study/vote", json={"trial": trials[key], "choice": "A"})
        assert answer.status_code == 410 and "no longer part of the study" in \
            answer.json()["error"]
        assert c.get(f"/api/study/images/{trials[key]}/A").status_code == 410
    assert VoteStore(database).votes() == []  # nothing stored
    for key in kept:
        assert c.post("/api/study/vote", json={"trial": trials[key], "choice": "B"}) \
            .status_code == 201
    assert c.get("/api/study/next").json() == {"done": 2, "total": 2, "finished": True,
                                               "trial": None}
    # a restart on other rows: every earlier trial compares the old pair, so none is served
    app, other = restarted(project, database, tmp_path, rows=(ROWS[0], "amexgan-cityscapes"))
    c = client(app)
    c.cookies.set("huev_participant", token)
    assert c.get("/api/study/next").json()["total"] == 0
    answer = c.post("/api/study/vote", json={"trial": trials[removed[0]], "choice": "A"})
    assert answer.status_code == 410 and not any(row in answer.text for row in ROWS)
    assert len(VoteStore(database).votes()) == 2
    fresh, progress = joined(app, other.store)  # a new participant gets the new pair
    rows = other.store.trial(fresh.cookies["huev_participant"], progress["trial"])
    assert {rows["A"], rows["B"]} == {ROWS[0], "amexgan-cityscapes"}


def test_body_limit_refuses_before_reading_the_body():
    """A declared Content-Length over the limit: 413 before one byte is read; a streamed body
    without one: refused as soon as the count passes the limit, the rest never read."""
    reads, sent = [], []

    async def inner(scope, receive, send):
        while True:
            message = await receive()
            if not message.get("more_body"):
                break

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"x" * 6, "more_body": len(reads) < 100}

    async def send(message):
        sent.append(message)

    import anyio
    limited = BodyLimit(inner, limit=10)
    anyio.run(limited, {"type": "http", "headers": [(b"content-length", b"11")]}, receive, send)
    assert reads == [] and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {"error": "request body larger than 10 bytes"}
    with pytest.raises(ApiError) as err:
        anyio.run(limited, {"type": "http", "headers": []}, receive, send)
    assert err.value.status == 413 and len(reads) == 2  # 6 + 6 > 10: stopped at the second


def test_oversized_bodies_get_413_in_the_error_format(app, editor_app, study):
    c, progress = joined(app, study.store)
    limit = webapp.MAX_BODY_BYTES["study"]
    too_big = c.post("/api/study/vote", content=b" " * (limit + 1),
                     headers={"content-type": "application/json"})
    assert too_big.status_code == 413 and too_big.json() == {
        "error": f"request body larger than {limit} bytes"}

    def chunks():  # streamed (chunked): no Content-Length to check
        for _ in range(limit // 1000 + 2):
            yield b" " * 1000

    streamed = c.post("/api/study/vote", content=chunks(),
                      headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "larger than" in streamed.json()["error"]
    upload = c.post("/api/study/join", content=b" " * (webapp.MAX_BODY_BYTES["editor"]))
    assert upload.status_code == 413
    e = client(editor_app)
    huge = e.post("/api/editor/preview", content=b" " * (webapp.MAX_BODY_BYTES["editor"] + 1),
                  headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "error" in huge.json()
    assert study.store.votes() == []


def png_base64(array) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_editor_runs_the_edit_api(editor_app, project):
    c = client(editor_app)
    info = c.get("/api/editor/info").json()
    assert info["dataset"] == "cityscapes" and info["row"] == ROWS[1]
    car = next(label["id"] for label in info["labels"] if label["name"] == "car")
    assert car in info["edit_classes"] and info["maps"]
    answer = c.post("/api/editor/edit", json={"map": 0, "box": [4, 2, 20, 12], "label": car})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    edited = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["edited"].split(",")[1]))))
    # the same result as the edit API called directly (pipeline.apps.editing, no second copy)
    editor = load_editor(ROWS[1], params_path=project.params_path)
    page = build_editor(project.params_path, ROWS[1], project.data_root)
    _, labels, instances = page.maps[0]
    direct = editor.apply(labels, [Edit((4, 2, 20, 12), car)], instance_map=instances)
    assert (edited == direct.colour).all()
    assert result["photo"] and result["incomplete"]
    # an uploaded colour map of the same labels gives the same edit (no instance map: the
    # label map serves as its own, as with the edit command)
    upload = png_base64(editor.palette[labels])
    preview = c.post("/api/editor/preview", json={"upload": upload}).json()
    assert (preview["width"], preview["height"]) == (32, 16)
    answer = c.post("/api/editor/edit", json={"upload": upload, "box": [4, 2, 20, 12],
                                              "label": "car"})
    assert answer.status_code == 200
    plain = editor.apply(labels, [Edit((4, 2, 20, 12), "car")])
    uploaded = np.asarray(Image.open(io.BytesIO(base64.b64decode(
        answer.json()["edited"].split(",")[1]))))
    assert (uploaded == plain.colour).all()


def test_editor_refuses_bad_requests_with_one_line(editor_app):
    from test_edit import png_declaring
    c = client(editor_app)
    cases = [({"map": 0, "box": [4, 2, 200, 12], "label": "car"}, 400, "outside"),
             ({"map": 0, "box": [4, 2, 20, 12], "label": "dragon"}, 400, "unknown label"),
             ({"map": 99, "box": [4, 2, 20, 12], "label": "car"}, 400, "no test map"),
             ({"box": [4, 2, 20, 12], "label": "car"}, 422, "either map"),
             ({"upload": "%%%", "box": [4, 2, 20, 12], "label": "car"}, 400, "base64"),
             ({"upload": base64.b64encode(b"not a png").decode(), "box": [0, 0, 1, 1],
               "label": "car"}, 400, "uploaded file"),
             ({"upload": png_base64(np.full((8, 8, 3), 7, np.uint8)), "box": [0, 0, 1, 1],
               "label": "car"}, 400, "outside the cityscapes palette"),
             ({"map": 0, "box": [4, 2], "label": "car"}, 400, "box"),
             ({"map": 0, "box": [4, 2, 20, 12]}, 422, "label: Field required"),
             # a 20000x20000 PNG of a few hundred bytes: refused from its header, not decoded
             ({"upload": base64.b64encode(png_declaring((20000, 20000))).decode(),
               "box": [0, 0, 1, 1], "label": "car"}, 400, "16777216 pixels in all"),
             ({"upload": base64.b64encode(png_declaring((6000, 6000))).decode(),
               "box": [0, 0, 1, 1], "label": "car"}, 400, "6000x6000 pixels, more than")]
    for body, status, words in cases:
        answer = c.post("/api/editor/edit", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"] and "\n" not in answer.json()["error"]
        assert "/tmp" not in answer.json()["error"]
    bad = c.post("/api/editor/preview", content=b"\xff\xfe{}",
                 headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json() == {
        "error": "malformed request: the body is not UTF-8"}


def test_editor_runs_one_request_at_a_time(editor_app, monkeypatch):
    """While a preview or edit runs, the next one waits (up to EDITOR_WAIT_S), then gets 503;
    its body was read (and checked) before it waited, so a malformed one gets 422 at once."""
    monkeypatch.setattr(webapp_editor, "EDITOR_WAIT_S", 0.3)
    c = client(editor_app)
    busy = editor_app.state.editor.busy
    with busy:  # another request is running
        answer = c.post("/api/editor/edit", content=b"{not even json",
                        headers={"content-type": "application/json"})
        assert answer.status_code == 422 and "not JSON" in answer.json()["error"]
        answer = c.post("/api/editor/edit", json={"map": 0, "box": [4, 2, 20, 12],
                                                  "label": "car"})
    assert answer.status_code == 503 and "busy" in answer.json()["error"]
    assert c.post("/api/editor/edit", json={"map": 0, "box": [4, 2, 20, 12],
                                            "label": "car"}).status_code == 200
    assert not busy.locked() and editor_app.state.editor.reading == 0


def run_serve(project, *args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "stages.serve", "--params",
                           project.params_path, *args], cwd=REPO, env=env, capture_output=True,
                          text=True)


def serve_here(project, monkeypatch, capsys, *args):
    """`python -m stages.serve ARGS` that ends in an error, run in this process through the
    stage's own `run` wrapper: (exit status, stderr)."""
    from stages.common import run
    from stages.serve import main
    monkeypatch.setattr(sys, "argv", ["stages.serve", "--params", project.params_path, *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run(main)
    return stop.value.code, capsys.readouterr().err


def test_serve_invite_and_export(project, tmp_path, monkeypatch, capsys):
    """--invite and --export as processes; the refused command lines in this process (the
    same `run` wrapper and argument parser)."""
    database = str(tmp_path / "votes.sqlite")
    invited = run_serve(project, "--database", database, "--invite", "3")
    assert invited.returncode == 0, invited.stderr
    codes = invited.stdout.split()
    assert len(codes) == 3 and all(re.fullmatch(r"[2-9a-z]{5}-[2-9a-z]{5}", c) for c in codes)
    assert VoteStore(database).invitation_counts() == (3, 0)
    study = build_study(project.params, database, project.results)
    c, progress = joined(create_app(study), study.store, code=codes[0])
    c.post("/api/study/vote", json={"trial": progress["trial"], "choice": "A"})
    assert VoteStore(database).invitation_counts() == (2, 1)
    out = tmp_path / "votes.csv"
    done = run_serve(project, "--database", database, "--export", str(out))
    assert done.returncode == 0, done.stderr
    assert "exported 1 votes" in done.stdout
    assert out.read_text().count("\n") == 2
    assert not any(code.replace("-", "") in out.read_text() for code in codes)
    code, stderr = serve_here(project, monkeypatch, capsys, "--database",
                              str(tmp_path / "none.sqlite"), "--export")
    assert code == 1 and "no study has been served" in stderr
    for args, words in ((["--invite", "0"], "1..10000"),
                        (["--editor-row", ROWS[0]], "--editor-row needs --editor"),
                        (["--editor", "--invite", "2"], "not allowed with")):
        code, stderr = serve_here(project, monkeypatch, capsys, "--database", database, *args)
        assert code in (1, 2) and words in stderr, stderr
        assert stderr.count("\n") == 1, stderr


def test_the_study_imports_no_torch(project, tmp_path):
    """The study server's app is built without importing torch; then, in the same fresh
    process, the editor's imports it (so the check can see it)."""
    script = ("import sys\n"
              "from pipeline.config.loading import load_params\n"
              "from stages.serve import make_app, parse_args\n"
              "for extra in (['--unblinded-ok'], ['--editor']):\n"
              "    args = parse_args(sys.argv[1:] + extra)\n"
              "    make_app(args, load_params(args.params))\n"
              "    print(extra, 'torch' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    common = ["--params", project.params_path, "--database", str(tmp_path / "v.sqlite"),
              "--results", project.results, "--data", project.data_root]
    done = subprocess.run([sys.executable, "-c", script, *common], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["['--unblinded-ok'] False", "['--editor'] True"], \
        done.stdout


def bomb_png(width: int, height: int, channels: int) -> bytes:
    """A real decompression bomb: a valid PNG of width x height zero pixels (8-bit grey or
    RGB), a few hundred KB that decode to width * height * channels bytes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))
    colour_type = {1: 0, 3: 2}[channels]
    compressor = zlib.compressobj(9)
    row = bytes(1 + width * channels)  # filter byte 0 and the zero pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)) +
            chunk(b"IDAT", data) + chunk(b"IEND", b""))


def raw_request(port: int, path: str, content_length: int) -> tuple:
    """Send only the headers of a POST that declares `content_length` bytes; (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                  f"\r\nContent-Length: {content_length}\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))
        while len(body) < length:
            body += s.recv(65536)
    return int(head.split()[1]), json.loads(body)


def test_bombs_and_oversized_bodies_leave_the_server_small(project, tmp_path):
    """A real `stages.serve --editor` and study server: decompression bombs (20000x20000 grey,
    6000x6000 RGB, which decoded would take 400 MB and 108 MB, and the map's arrays several
    times that) sent 8 at a time get 400, bodies declaring 30 MB get 413 without being sent;
    the servers' RSS grows by less than 200 MB."""
    import httpx
    bombs = [base64.b64encode(bomb_png(20000, 20000, 1)).decode(),
             base64.b64encode(bomb_png(6000, 6000, 3)).decode()]
    assert all(len(b) < webapp.MAX_BODY_BYTES["editor"] for b in bombs)
    editor = Server(project.root, str(tmp_path / "e.sqlite"), ["--editor"])
    try:
        with httpx.Client(base_url=editor.url, timeout=120) as c:
            warm = c.post("/api/editor/edit", json={"map": 0, "box": [4, 2, 20, 12],
                                                    "label": "car"})
            assert warm.status_code == 200, warm.text
            before = editor.rss_mb()

            def send(k):
                path = "/api/editor/edit" if k % 2 else "/api/editor/preview"
                body = {"upload": bombs[k % 2]}
                if path.endswith("edit"):
                    body.update(box=[0, 0, 1, 1], label="car")
                return c.post(path, json=body)

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(send, range(16)))
            assert [a.status_code for a in answers] == [400] * 16, answers[0].text
            assert all("more than a map may have" in a.json()["error"] for a in answers)
            for path in ("/api/editor/edit", "/api/editor/preview"):
                status, body = raw_request(editor.port, path, 30_000_000)
                assert status == 413 and "larger than" in body["error"]
            grown = editor.rss_mb() - before
            print(f"editor server: {before:.0f} MB RSS, +{grown:.0f} MB after the bombs")
            assert grown < 200, f"editor RSS grew by {grown:.0f} MB"
    finally:
        editor.stop()
    database = str(tmp_path / "s.sqlite")
    VoteStore(database).invite(1)
    study = Server(project.root, database)
    try:
        before = study.rss_mb()
        for path in ("/api/study/vote", "/api/study/join"):
            status, body = raw_request(study.port, path, 30_000_000)
            assert status == 413 and "larger than 16384 bytes" in body["error"]
        grown = study.rss_mb() - before
        print(f"study server: {before:.0f} MB RSS, +{grown:.0f} MB after the bodies")
        assert grown < 200
    finally:
        study.stop()


def test_editor_page_gives_the_edit_commands_result(editor_app, project, tmp_path,
                                                    monkeypatch):
    """The same map, box and label through the page and through the `python -m stages.edit`
    command (its main, in this process; test_edit.py runs it as a process): the same edited
    map (one code path, pipeline.apps.editing)."""
    from stages.edit import main as edit_command
    page = build_editor(project.params_path, ROWS[1], project.data_root)
    _, labels, _ = page.maps[1]
    colour = page.editor.palette[labels]
    Image.fromarray(colour).save(tmp_path / "map.png")
    monkeypatch.chdir(project.root)
    edit_command([ROWS[1], str(tmp_path / "map.png"), "--edit", "2,3,18,14", "car",
                  "--out", str(tmp_path / "out"), "--params", project.params_path])
    answer = client(editor_app).post("/api/editor/edit", json={"upload": png_base64(colour),
                                                               "box": [2, 3, 18, 14],
                                                               "label": "car"})
    assert answer.status_code == 200, answer.text
    web = np.asarray(Image.open(io.BytesIO(base64.b64decode(
        answer.json()["edited"].split(",")[1]))))
    command = np.asarray(Image.open(tmp_path / "out" / "colour.png").convert("RGB"))
    assert (web == command).all()
