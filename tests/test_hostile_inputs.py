"""Issue 32's attacks, each against the mechanism that failed: a model file whose pickle runs
code (stages.edit and the editor), a container whose directory hides a huge frame, maps at the
size limits, a slow body on the editor, oversized integers / lone surrogates / duplicate keys /
non-ASCII digits, X-Forwarded-For from loopback, the study's items against someone with the
repository, and a study after its export. Memory figures: tools/hostile_inputs_bench.py ->
reports/hostile_inputs.json (not timed here)."""
import dataclasses
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from pipeline.apps import webapp_editor, webapp_http
from pipeline.apps.editing import EditError
from pipeline.apps.editing_maps import read_label_map, side_by_side
from pipeline.apps.huev_votes import VoteStore
from pipeline.apps.webapp import create_app
from pipeline.apps.webapp_editor import build_editor
from pipeline.apps.webapp_study import build_study
from tests.huev_project import ROWS, Server, free_port, make_project
from tests.tiny_project import REPO

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def editor_page(project):
    return build_editor(project.params_path, ROWS[1], project.data_root)


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, depth: int = 8, colour: int = 0) -> bytes:
    """A PNG whose IHDR declares width x height (one tiny IDAT: decoding it would fill the
    declared frame; reading its header costs nothing)."""
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b""))


def ico_wrapping(png: bytes, listed: int = 256) -> bytes:
    """An ICO whose directory lists one listed x listed image that is the PNG `png`."""
    size = 0 if listed >= 256 else listed
    return (struct.pack("<HHH", 0, 1, 1) +
            struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(png), 22) + png)


# -- 1: a model file whose pickle runs code ---------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling calls open(marker, "w"): the marker file appears
        return (open, (self.marker, "w"))


def evil_model(project, folder, marker) -> str:
    state = torch.load(os.path.join(project.root, "artifacts", "models", ROWS[1], "seed0",
                                    "generator.pt"), weights_only=True)
    state["meta"]["note"] = _Payload(str(marker))
    path = os.path.join(folder, "generator.pt")
    torch.save(state, path)
    return path


def test_a_model_whose_pickle_runs_code_is_refused_before_it_runs(project, tmp_path):
    marker = tmp_path / "pwned"
    model = evil_model(project, str(tmp_path), marker)
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(tmp_path / "map.png")
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    edit = subprocess.run([sys.executable, "-m", "stages.edit", model, str(tmp_path / "map.png"),
                           "--edit", "2,2,10,10", "car", "--out", str(tmp_path / "out"),
                           "--params", project.params_path], cwd=REPO, env=env,
                          capture_output=True, text=True)
    lines = edit.stderr.strip().splitlines()
    assert edit.returncode == 1 and len(lines) == 1, edit.stderr
    assert lines[0].startswith("error: ") and model in lines[0] and "refused" in lines[0]
    assert not marker.exists() and not (tmp_path / "out").exists()
    serve = subprocess.run([sys.executable, "-m", "stages.serve", "--editor", "--editor-row",
                            model, "--params", project.params_path, "--data",
                            project.data_root, "--port", str(free_port())], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=120)
    lines = serve.stderr.strip().splitlines()
    assert serve.returncode == 1 and len(lines) == 1 and "refused" in lines[0], serve.stderr
    with pytest.raises(ValueError, match="refused") as refused:
        build_editor(project.params_path, model, project.data_root)
    assert "\n" not in str(refused.value)
    assert not marker.exists()


# -- 2: decode limits before decoding -----------------------------------------------------------


@pytest.fixture
def no_decoding(monkeypatch):
    """Fails a test that decodes pixels (PIL's ImageFile.load)."""
    from PIL import ImageFile

    def load(self):
        raise AssertionError(f"decoded a {self.format} frame of {self.size}")
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_an_ico_hiding_a_huge_png_is_refused_without_decoding(editor_page, tmp_path,
                                                              no_decoding):
    path = tmp_path / "map.png"
    path.write_bytes(ico_wrapping(png_declaring(13000, 13000)))
    with pytest.raises(EditError, match=r"not a PNG file \(an ICO icon\)"):
        read_label_map(str(path), editor_page.editor)


@pytest.mark.parametrize("size", [(1, 16_777_216), (16_777_216, 1), (4097, 16), (5000, 4000)])
def test_maps_over_a_side_or_the_area_are_refused_from_the_header(editor_page, tmp_path,
                                                                  no_decoding, size):
    path = tmp_path / "map.png"
    path.write_bytes(png_declaring(*size))
    with pytest.raises(EditError, match=rf"{size[0]}x{size[1]} pixels, more than a map may "
                                        r"have \(at most 4096 a side"):
        read_label_map(str(path), editor_page.editor)


def test_a_legal_map_is_held_in_the_smallest_type(editor_page, tmp_path):
    editor = editor_page.editor
    ids = np.random.default_rng(0).integers(0, editor.num_labels, (64, 2048)).astype(np.uint8)
    Image.fromarray(ids).save(tmp_path / "ids.png")
    Image.fromarray(editor.palette[ids]).save(tmp_path / "colour.png")
    for name in ("ids.png", "colour.png"):
        labels = read_label_map(str(tmp_path / name), editor)
        assert labels.dtype == np.uint16 and np.array_equal(labels, ids), name  # not int64
    assert editor.check_label_map(ids).nbytes == ids.size * 2
    assert (np.iinfo(np.uint16).max >= (editor.num_labels - 1) * 1000 + 999)  # edit instances


@pytest.mark.parametrize("shape", [(4096, 1), (1, 4096), (4096, 4096)])
def test_side_by_side_is_bounded_whatever_the_maps_shape(shape):
    from pipeline.apps.editing import EditResult
    colour = np.zeros((*shape, 3), np.uint8)
    result = EditResult(labels=np.zeros(shape, np.uint16), colour=colour, incomplete=colour,
                        photo=None)
    height, width = side_by_side(colour, result, [(0, 0, 1, 1)]).shape[:2]
    assert height <= 1024 + 14 and width <= 4 * 1024 + 12, (height, width)


def test_an_edit_holds_the_map_in_its_id_type_and_leaves_the_callers_arrays(editor_page,
                                                                           monkeypatch):
    """The box the generator fills comes back in the map's id type (a full-map box of a
    4096x4096 map: 32 MB, not 128 MB of int64), and the caller's maps are not changed."""
    from pipeline.apps.editing import Edit
    editor = editor_page.editor
    rng = np.random.default_rng(1)
    labels = rng.integers(0, editor.num_labels, (90, 150)).astype(np.uint16)
    instances = labels.astype(np.int32) * 1000 + 5
    kept = labels.copy(), instances.copy()
    returned = []
    original = editor._edit_box

    def recording(*args):
        returned.append(original(*args))
        return returned[-1]
    monkeypatch.setattr(editor, "_edit_box", recording)
    edits = [Edit((0, 0, 150, 90), "car"), Edit((10, 20, 60, 50), "person")]
    result = editor.apply(labels, edits, instances)
    assert [p.dtype for p in returned] == [np.uint16, np.uint16]
    assert result.labels.dtype == np.uint16
    assert np.array_equal(labels, kept[0]) and np.array_equal(instances, kept[1])
    assert np.array_equal(result.labels[20:50, 10:60], returned[1])
    again = editor.apply(labels, edits, instances)  # the same answer from the same inputs
    assert np.array_equal(again.labels, result.labels)


def test_twosm_upsampled_labels_come_in_the_asked_type():
    from pipeline.models.twosm_prediction import upsampled_labels
    context, mask = torch.randn(35, 8, 16), torch.randn(8, 16)
    wide, painted = upsampled_labels(context, mask, (40, 70), (3, 30), (5, 66), chunk_pixels=50)
    small, painted_small = upsampled_labels(context, mask, (40, 70), (3, 30), (5, 66),
                                            chunk_pixels=50, dtype=np.uint8)
    assert wide.dtype == np.int64 and small.dtype == np.uint8
    assert np.array_equal(wide, small) and np.array_equal(painted, painted_small)


def test_a_large_photo_is_enlarged_band_by_band_as_one_resize(editor_page, monkeypatch):
    """G_I's photo of a map over 4 bands is enlarged band by band (no second full-size picture
    in PIL); each band is the whole resize's rows up to rounding: no value more than 1 of 255
    off."""
    from pipeline.apps import editing
    editor = editor_page.editor
    assert editor.translator is not None
    colour = editor.palette[np.random.default_rng(2).integers(0, 20, (300, 410))]
    whole = editor.translate(colour)
    monkeypatch.setattr(editing, "PHOTO_BAND_PIXELS", 4096)  # 300x410 > 4 bands: banded
    banded = editor.translate(colour)
    assert banded.shape == whole.shape == (300, 410, 3) and banded.dtype == np.uint8
    assert np.abs(banded.astype(int) - whole.astype(int)).max() <= 1
    assert np.array_equal(banded[:9], whole[:9])  # the first band starts where the whole does


# -- 3: a slow body never holds the editor's lock -------------------------------------------


class ThreadServer:
    """uvicorn serving an app in a thread of this process (so module constants can be patched)."""

    def __init__(self, app):
        import uvicorn
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", proxy_headers=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


def test_a_slow_body_does_not_hold_the_editor(editor_page, monkeypatch):
    """A client sends 20 of 200 declared bytes and goes idle; another client's edit is served
    meanwhile; the slow one gets 408 when its body time is up and the connection closes."""
    import httpx
    monkeypatch.setattr(webapp_editor, "EDITOR_WAIT_S", 3)
    monkeypatch.setattr(webapp_http, "BODY_TIMEOUT_S", 6)
    server = ThreadServer(create_app(editor=dataclasses.replace(editor_page)))
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        slow.sendall(b"POST /api/editor/edit HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: 200\r\n\r\n" + b'{"map": 0, "box": ')
        time.sleep(0.5)
        started = time.monotonic()
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as c:
            other = c.post("/api/editor/edit", json={"map": 0, "box": [4, 2, 20, 12],
                                                     "label": "car"})
        assert other.status_code == 200, other.text
        assert time.monotonic() - started < 5
        data = b""
        while True:
            part = slow.recv(65536)
            if not part:
                break  # the server closed the connection
            data += part
        head, body = data.split(b"\r\n\r\n", 1)
        assert head.split()[1] == b"408" and b"did not arrive within 6 s" in body, data
        assert time.monotonic() - started < 15
    finally:
        slow.close()
        server.stop()


# -- 4: never a 500 -------------------------------------------------------------------------------


def raw_post(c, path, text):
    return c.post(path, content=text.encode("utf-8", "surrogatepass"),
                  headers={"content-type": "application/json"})


def one_line_4xx(answer, status=422):
    assert answer.status_code == status, (answer.status_code, answer.text[:200])
    error = answer.json()["error"]
    assert "\n" not in error and len(error) < 600
    return error


def test_hostile_json_gets_a_one_line_4xx(project, tmp_path, editor_page):
    study = build_study(project.params, str(tmp_path / "v.sqlite"), project.results)
    c = TestClient(create_app(study), raise_server_exceptions=False)
    huge = "9" * 5000
    assert "5000 digits (at most 18)" in one_line_4xx(raw_post(c, "/api/study/join", f'{{"code": {huge}}}'))
    assert c.post("/api/study/join", json={"code": study.store.invite(1)[0]}).status_code == 200
    trial = c.get("/api/study/next").json()["trial"]
    for text, words in ((f'{{"trial": "{trial}", "choice": "A", "response_ms": {huge}}}',
                         "5000 digits (at most 18)"),
                        ('{"trial": "\\ud800", "choice": "A"}', "lone surrogate"),
                        ('{"trial": "x", "choice": "\\udfff"}', "lone surrogate"),
                        (f'{{"trial": "{trial}", "choice": "B", "choice": "A"}}',
                         "duplicate key 'choice'"),
                        (f'{{"trial": "{trial}", "choice": "A", "response_ms": NaN}}',
                         "NaN is not a JSON number")):
        assert words in one_line_4xx(raw_post(c, "/api/study/vote", text)), text
    assert VoteStore(study.store.path).votes() == []
    e = TestClient(create_app(editor=editor_page), raise_server_exceptions=False)
    for text in (f'{{"map": 0, "box": [{huge}, 0, 1, 1], "label": "car"}}',
                 f'{{"map": 0, "box": [0, 0, 1, 1], "label": {huge}}}',
                 '{"map": 0, "box": [0, 0, 1, 1], "label": "\\ud800"}'):
        one_line_4xx(raw_post(e, "/api/editor/edit", text))
    for label in ("\u0663", "\u0663\u0663", "\uff13", "1_0"):  # Arabic-Indic 3, fullwidth 3
        error = one_line_4xx(e.post("/api/editor/edit", json={"map": 0, "box": [4, 2, 20, 12],
                                                              "label": label}), 400)
        assert "ASCII digits" in error or "unknown label" in error, error
    assert e.post("/api/editor/edit", json={"map": 0, "box": [4, 2, 20, 12],
                                            "label": "26"}).status_code == 200


def test_box_and_label_on_the_command_line_are_ascii(editor_page):
    from pipeline.apps.editing import parse_box
    assert parse_box("1,2,30,-4") == (1, 2, 30, -4)
    for text in ("\u0663,2,3,4", "1_0,2,3,4", "+1,2,3,4", "1," + "9" * 5000 + ",3,4"):
        with pytest.raises(EditError, match="expected x1,y1,x2,y2"):
            parse_box(text)
    with pytest.raises(EditError, match="ASCII digits"):
        editor_page.editor.label_id("\u0663")
    assert editor_page.editor.label_id(" 3 ") == 3


# -- 5: X-Forwarded-For from loopback is not trusted --------------------------------------------


def test_forwarded_for_does_not_escape_the_join_limit(project, tmp_path):
    import httpx
    database = str(tmp_path / "votes.sqlite")
    VoteStore(database)
    server = Server(project.root, database)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            statuses = [c.post("/api/study/join", json={"code": "abcde-fghjk"},
                               headers={"X-Forwarded-For": f"10.9.{k // 250}.{k % 250 + 1}"})
                        .status_code for k in range(12)]
    finally:
        server.stop()
    assert statuses[:10] == [403] * 10 and statuses[10:] == [429, 429], statuses
    from pipeline.apps.serving import proxy_options
    assert proxy_options(None) == {"proxy_headers": False}
    assert proxy_options("10.0.0.5") == {"proxy_headers": True,
                                         "forwarded_allow_ips": ["10.0.0.5"]}


# -- 6: blinding against someone who has the repository ------------------------------------------


def test_the_served_items_depend_on_a_secret_and_avoid_the_figures(project, tmp_path):
    """Two studies (two databases, so two secrets) serve different draws of 2 items; none is a
    test box the committed figures show (the first evaluate.grid_images)."""
    from pipeline.apps.huev import load_items
    params = dataclasses.replace(project.params,
                                 huev=dataclasses.replace(project.params.huev, items=2))
    everything = [i.key for i in load_items(project.results, ROWS, project.spec.palette)]
    shown = set(everything[:project.params.evaluate.grid_images])
    draws = []
    for k in range(6):
        folder = tmp_path / f"study{k}"
        study = build_study(params, str(folder / "votes.sqlite"), project.results)
        keys = [item.key for item in study.items]
        assert len(keys) == 2 and not shown & set(keys), keys
        secret = folder / "study.secret"
        assert secret.exists() and (secret.stat().st_mode & 0o077) == 0
        draws.append(tuple(keys))
    assert len(set(draws)) > 1, draws  # the public first-N choice would give one draw
    again = build_study(params, str(tmp_path / "study0" / "votes.sqlite"), project.results)
    assert tuple(i.key for i in again.items) == draws[0]  # the same secret, the same items
    ignored = subprocess.run(["git", "check-ignore", "huev/study.secret"], cwd=REPO,
                             capture_output=True, text=True)
    assert ignored.returncode == 0, "huev/study.secret must be git-ignored"


def test_no_served_item_is_one_the_figures_label_by_row(project, tmp_path):
    """The grids (reports/figures/grid_*.png) draw the samples that the evaluation's own
    BoxTestSet.save writes (test box, truth, each row's result under the row's name): whatever
    the secret, the study serves none of them. Fails if the figures' choice of examples and
    the study's exclusion drift apart."""
    from types import SimpleNamespace
    from pipeline.evaluation.evaluation import BoxTestSet, test_items
    spec, split, items = test_items("cityscapes", os.path.join(project.data_root, "cityscapes"))
    with np.load(os.path.join(project.results, f"{ROWS[0]}.npz")) as data:
        fused = data["fused"]
    grid = project.params.evaluate.grid_images
    BoxTestSet.save(SimpleNamespace(spec=spec, split=split, items=items), str(tmp_path),
                    ROWS[0], (fused, np.zeros_like(fused)), grid)
    with np.load(tmp_path / f"{ROWS[0]}.npz") as shown:
        figures = [(t.tobytes(), tuple(int(v) for v in b), int(l))
                   for t, b, l in zip(shown["truth"], shown["boxes"], shown["labels"])]
    assert len(figures) == grid
    served = set()
    for k in range(8):  # 8 secrets, each drawing every item it may serve
        study = build_study(project.params, str(tmp_path / f"s{k}" / "votes.sqlite"),
                            project.results)
        served |= {(i.complete.tobytes(), tuple(i.box), i.label) for i in study.items}
    assert len(served) == project.items  # every test box but the figures' is served by some
    assert not served & set(figures)


def test_a_study_on_public_seed_rows_is_refused_unless_unblinded_ok(project, tmp_path,
                                                                   monkeypatch, capsys):
    """Rows trained with the public seed (params seeds: [0]): serving the study is refused in
    one line naming the secret seed and --unblinded-ok; with the flag it starts (a warning);
    with the secret seed in params it starts without the flag."""
    from pipeline.apps.huev import secret_path, study_secret, training_seed
    from stages.common import run
    from pipeline.apps.serving import UnblindedError
    from stages.serve import main, make_app, parse_args
    database = str(tmp_path / "votes.sqlite")
    common = ["--params", project.params_path, "--database", database, "--results",
              project.results]
    monkeypatch.setattr(sys, "argv", ["stages.serve", *common])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run(main)
    error = capsys.readouterr().err
    seed = training_seed(study_secret(secret_path(database)))
    assert stop.value.code == 1 and error.count("\n") == 1, error
    assert error.startswith("error: the study's rows were trained with seed 0")
    assert f"seeds: [{seed}]" in error and "--unblinded-ok" in error, error
    assert make_app(parse_args([*common, "--unblinded-ok"]), project.params) is not None
    with pytest.raises(UnblindedError):
        make_app(parse_args(common), project.params)
    secret_params = dataclasses.replace(project.params, seeds=[seed])
    assert make_app(parse_args(common), secret_params) is not None
    for extra in (["--editor"], ["--invite", "1"], ["--export"], ["--training-seed"]):
        with pytest.raises(Exception, match="--unblinded-ok goes with serving the study"):
            parse_args([*common, *extra, "--unblinded-ok"])


# -- 7: study lifecycle -------------------------------------------------------------------------


def test_a_closed_study_refuses_votes_and_the_export_says_whether_it_is_open(project,
                                                                              tmp_path):
    database = str(tmp_path / "votes.sqlite")
    study = build_study(project.params, database, project.results)
    c = TestClient(create_app(study))
    assert c.post("/api/study/join", json={"code": study.store.invite(1)[0]}).status_code == 200
    trial = c.get("/api/study/next").json()["trial"]
    assert c.post("/api/study/vote", json={"trial": trial, "choice": "A"}).status_code == 201
    env = dict(os.environ, PYTHONPATH=REPO)
    common = [sys.executable, "-m", "stages.serve", "--params", project.params_path,
              "--database", database, "--export"]
    opened = subprocess.run([*common, str(tmp_path / "a.csv")], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert opened.returncode == 0 and "STILL OPEN" in opened.stdout, opened.stderr
    closed = subprocess.run([*common, str(tmp_path / "b.csv"), "--close"], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert closed.returncode == 0 and "the study closed at" in closed.stdout, closed.stderr
    trial = c.get("/api/study/next").json()["trial"]
    late = c.post("/api/study/vote", json={"trial": trial, "choice": "B"})
    assert late.status_code == 403 and "the study closed at" in late.json()["error"]
    late_join = c.post("/api/study/join", json={"code": "abcde-fghjk"})
    assert late_join.status_code == 403 and "closed" in late_join.json()["error"]
    assert len(VoteStore(database).votes()) == 1
    assert (tmp_path / "b.csv").read_text().count("\n") == 2  # header + the one vote
    with pytest.raises(ValueError, match="closed"):
        VoteStore(database).invite(1)
