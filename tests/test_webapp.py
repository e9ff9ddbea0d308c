"""The web app's API (pipeline.webapp) on a tiny project: the study (join, trials, images, votes
and every refused-vote case, concurrent votes, a restart), the editor (the same code path as the
`edit` command) and `python -m stages.serve --export`."""
import base64
import io
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

with warnings.catch_warnings():  # starlette prefers httpx2; httpx is what requirements pin
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from pipeline.editing import Edit, load_editor
from pipeline.huev import VoteStore
from pipeline.webapp import build_editor, build_study, create_app
from tests.huev_project import ROWS, make_project
from tests.tiny_project import REPO


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("huev"))


@pytest.fixture
def app(project, tmp_path):
    study = build_study(project.params, str(tmp_path / "votes.sqlite"), project.results)
    editor = build_editor(project.params_path, ROWS[1], project.data_root)
    return create_app(study, editor)


def client(app):
    return TestClient(app)


def test_study_serves_trials_without_naming_rows(app, project):
    c = client(app)
    assert c.get("/api/study/next").status_code == 401  # not joined yet
    joined = c.post("/api/study/join")
    assert joined.status_code == 200 and "httponly" in joined.headers["set-cookie"].lower()
    progress = joined.json()
    assert progress == {"done": 0, "total": project.items, "finished": False,
                        "trial": progress["trial"]}
    for kind in ("complete", "incomplete", "A", "B"):
        image = c.get(f"/api/study/images/{progress['trial']}/{kind}")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).size == (32, 16)
    assert c.get(f"/api/study/images/{progress['trial']}/pix2pixhd-cityscapes").status_code == 404
    for page in ("/", "/study", "/editor", "/static/study.js"):
        text = c.get(page).text
        assert c.get(page).status_code == 200
        assert not any(row in text for row in ROWS), page
    assert not any(row in joined.text for row in ROWS)
    again = c.post("/api/study/join").json()  # a returning participant continues
    assert again["trial"] == progress["trial"]


def test_votes_are_stored_and_refused_votes_store_nothing(app, project, tmp_path):
    c, other = client(app), client(app)
    trial = c.post("/api/study/join").json()["trial"]
    other_trial = other.post("/api/study/join").json()["trial"]
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
        (client(app), {"trial": trial, "choice": "A"}, 401),              # no participant
    ]
    for who, body, status in refused:
        answer = who.post("/api/study/vote", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["error"], body
    bad_json = c.post("/api/study/vote", content=b"{not json",
                      headers={"content-type": "application/json"})
    assert bad_json.status_code == 422
    forged_cookie = client(app)
    forged_cookie.cookies.set("huev_participant", "x" * 32)
    assert forged_cookie.post("/api/study/vote",
                              json={"trial": other_trial, "choice": "A"}).status_code == 401
    store = VoteStore(str(tmp_path / "votes.sqlite"))
    assert len(store.votes()) == 1  # only the accepted vote


def test_concurrent_votes(app, tmp_path):
    """Eight participants vote at once, each also firing the same vote twice in parallel: every
    first vote is stored, every duplicate refused with 409, nothing lost or doubled."""
    participants = [client(app) for _ in range(8)]
    trials = [p.post("/api/study/join").json()["trial"] for p in participants]
    answers, barrier = [], threading.Barrier(16)

    def cast(p, trial):
        barrier.wait()
        answers.append(p.post("/api/study/vote", json={"trial": trial, "choice": "B"})
                       .status_code)

    threads = [threading.Thread(target=cast, args=(p, t))
               for p, t in zip(participants, trials) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201] * 8 + [409] * 8
    votes = VoteStore(str(tmp_path / "votes.sqlite")).votes()
    assert len(votes) == 8 and len({v["participant"] for v in votes}) == 8


def test_a_restart_loses_no_vote(project, tmp_path):
    database = str(tmp_path / "votes.sqlite")
    first = client(create_app(build_study(project.params, database, project.results)))
    trial = first.post("/api/study/join").json()["trial"]
    token = first.cookies["huev_participant"]
    next_trial = first.post("/api/study/vote", json={"trial": trial, "choice": "A"}).json()
    # a new server process on the same database: the vote is there, the participant continues
    second = client(create_app(build_study(project.params, database, project.results)))
    second.cookies.set("huev_participant", token)
    progress = second.get("/api/study/next").json()
    assert progress["done"] == 1 and progress["trial"] == next_trial["trial"]
    assert second.post("/api/study/vote", json={"trial": trial, "choice": "B"}).status_code == 409


def test_unavailable_pages_say_why(project):
    app = create_app(None, None, unavailable={"study": "run dvc repro evaluate",
                                              "editor": "no model"})
    c = client(app)
    assert c.get("/api/study/info").json() == {"available": False,
                                               "reason": "run dvc repro evaluate"}
    answer = c.post("/api/study/join")
    assert answer.status_code == 503 and "dvc repro evaluate" in answer.json()["error"]
    assert c.get("/api/editor/info").json()["reason"] == "no model"


def png_base64(array) -> str:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_editor_runs_the_edit_api(app, project):
    c = client(app)
    info = c.get("/api/editor/info").json()
    assert info["available"] and info["dataset"] == "cityscapes" and info["row"] == ROWS[1]
    car = next(label["id"] for label in info["labels"] if label["name"] == "car")
    assert car in info["edit_classes"] and info["maps"]
    answer = c.post("/api/editor/edit", json={"map": 0, "box": [4, 2, 20, 12], "label": car})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    edited = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["edited"].split(",")[1]))))
    # the same result as the edit API called directly (pipeline.editing, no second copy)
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


def test_editor_refuses_bad_requests_with_one_line(app):
    from test_edit import png_declaring
    c = client(app)
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
             # a 20000x20000 PNG of a few hundred bytes: refused from its header, not decoded
             ({"upload": base64.b64encode(png_declaring((20000, 20000))).decode(),
               "box": [0, 0, 1, 1], "label": "car"}, 400, "16777216 pixels (4096x4096)"),
             ({"upload": base64.b64encode(png_declaring((6000, 6000))).decode(),
               "box": [0, 0, 1, 1], "label": "car"}, 400, "6000x6000 pixels, more than")]
    for body, status, words in cases:
        answer = c.post("/api/editor/edit", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in answer.json()["error"] and "\n" not in answer.json()["error"]
        assert "/tmp" not in answer.json()["error"]


def test_serve_export_writes_the_votes_csv(project, tmp_path):
    database = str(tmp_path / "votes.sqlite")
    c = client(create_app(build_study(project.params, database, project.results)))
    trial = c.post("/api/study/join").json()["trial"]
    c.post("/api/study/vote", json={"trial": trial, "choice": "A"})
    out = tmp_path / "votes.csv"
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-m", "stages.serve", "--params",
                           project.params_path, "--database", database, "--export", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "exported 1 votes" in done.stdout
    assert out.read_text().count("\n") == 2
    missing = subprocess.run([sys.executable, "-m", "stages.serve", "--params",
                              project.params_path, "--database", str(tmp_path / "none.sqlite"),
                              "--export"], cwd=REPO, env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "no study has been served" in missing.stderr


def test_editor_page_gives_the_edit_commands_result(app, project, tmp_path):
    """The same map, box and label through the page and through `python -m stages.edit`: the
    same edited map (one code path, pipeline.editing)."""
    page = build_editor(project.params_path, ROWS[1], project.data_root)
    _, labels, _ = page.maps[1]
    colour = page.editor.palette[labels]
    Image.fromarray(colour).save(tmp_path / "map.png")
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "stages.edit", ROWS[1],
                           str(tmp_path / "map.png"), "--edit", "2,3,18,14", "car",
                           "--out", str(tmp_path / "out"),
                           "--params", project.params_path], cwd=project.root, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    answer = client(app).post("/api/editor/edit", json={"upload": png_base64(colour),
                                                        "box": [2, 3, 18, 14], "label": "car"})
    assert answer.status_code == 200, answer.text
    web = np.asarray(Image.open(io.BytesIO(base64.b64decode(
        answer.json()["edited"].split(",")[1]))))
    command = np.asarray(Image.open(tmp_path / "out" / "colour.png").convert("RGB"))
    assert (web == command).all()
