"""End to end in a real browser: `python -m stages.serve` (the study) and `python -m
stages.serve --editor` on a tiny project, headless Chromium (Debian's `chromium`, driven by
Playwright with executable_path; `make test` installs it when missing and run as root) answers
the study by keyboard and mouse with invitation links, then makes one edit on the editor page;
the test checks that the study server offers nothing of the editor, what the server stored,
what `--export` and the huev stage aggregate, that a crashed (SIGKILLed) and restarted server
lost no vote, and that the edited map is the edit API's own result.

HUEV_SCREENSHOTS=DIR also saves screenshots of both pages there (README's docs/ images come
from tools/screenshots.py, which uses this test's helpers on trained models)."""
import base64
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline.apps.editing import Edit, load_editor
from pipeline.apps.huev_votes import VoteStore
from pipeline.apps.webapp_editor import build_editor
from tests.huev_project import ROWS, Server, make_project
from tests.tiny_project import REPO

INSTALL_HINT = ("Chromium is needed for the browser test: `apt-get install -y chromium` (as "
                "root; `make test` does it when run as root), or set MEXGAN_CHROMIUM to a "
                "Chromium / Chrome executable")


def chromium_path() -> str:
    """The system Chromium (Playwright's own browser download needs internet)."""
    configured = os.environ.get("MEXGAN_CHROMIUM")
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"MEXGAN_CHROMIUM={configured} is not an executable. {INSTALL_HINT}")
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"no chromium on PATH. {INSTALL_HINT}")


def decode(data_url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def answer_study(page, url: str, code: str, choices: str,
                 screenshot: str | None = None) -> list:
    """Open the study by its invitation link (the code filled in), agree, and answer one item
    per letter of `choices` (keyboard for upper case letters, the A / B buttons for lower case
    ones); returns the progress texts seen."""
    page.goto(f"{url}/study?code={code}")
    page.wait_for_selector("#start:visible")
    assert "voluntary and anonymous" in page.inner_text("#instructions")
    assert page.input_value("#code") == code
    page.click("#start")
    seen, shown = [], None
    for k, choice in enumerate(choices):
        page.wait_for_function("(old) => document.body.dataset.ready && "
                               "document.body.dataset.ready !== old", arg=shown or "")
        shown = page.evaluate("document.body.dataset.ready")
        seen.append(page.inner_text("#progress-text"))
        assert page.inner_text("#question").startswith("Task: Which synthetic image (A or B)")
        if screenshot and k == 1:
            page.screenshot(path=screenshot, full_page=True)
        if choice.isupper():
            page.keyboard.press(choice)
        else:
            page.click(f"#choose-{choice.upper()}")
    return seen


def edit_in_browser(page, url: str, label: str, start, end, screenshot: str | None = None):
    """Drag a box from `start` to `end` (fractions of the canvas) on the first test map,
    choose `label`, press Edit; returns (box, edited map as shown)."""
    page.goto(f"{url}/editor")
    page.wait_for_function("document.body.dataset.mapReady === '1'")
    page.select_option("#label-select", label=label)
    rect = page.locator("#canvas").bounding_box()
    page.mouse.move(rect["x"] + start[0] * rect["width"], rect["y"] + start[1] * rect["height"])
    page.mouse.down()
    page.mouse.move(rect["x"] + end[0] * rect["width"], rect["y"] + end[1] * rect["height"],
                    steps=5)
    page.mouse.up()
    box_text = page.inner_text("#box-text")
    box = tuple(int(v) for v in box_text.split("Box ")[1].split(" (")[0].split(", "))
    page.click("#run")
    page.wait_for_function("document.body.dataset.edited === '1'")
    assert "pixels changed" in page.inner_text("#result-text")
    if screenshot:
        page.screenshot(path=screenshot, full_page=True)
    return box, decode(page.get_attribute("#img-edited", "src"))


def test_study_and_editor_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright
    executable = chromium_path()
    shots = os.environ.get("HUEV_SCREENSHOTS")
    project = make_project(tmp_path)
    database = str(tmp_path / "huev" / "votes.sqlite")
    codes = VoteStore(database).invite(2)
    server = Server(project.root, database)
    editor = None
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True,
                                        args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 900})
                errors = []
                page.on("pageerror", lambda err: errors.append(str(err)))
                # blinding: the study server has no editor, and no page of it names a row
                assert page.goto(f"{server.url}/editor").status == 404
                assert page.goto(f"{server.url}/api/editor/info").status == 404
                page.goto(f"{server.url}/study?code=22222-22222")  # a made-up code
                page.click("#start")
                page.wait_for_selector("#error:visible")
                assert "unknown invitation code" in page.inner_text("#error")
                assert not any(row in page.content() for row in ROWS)
                choices = "AbB"  # three items: key A, button B, key B
                seen = answer_study(page, server.url, codes[0], choices,
                                    shots and os.path.join(shots, "huev_study.png"))
                assert seen == [f"Item {k + 1} of {project.items} ({k} answered)"
                                for k in range(len(choices))]
                assert not any(row in page.content() for row in ROWS)
                # the last vote acknowledged (the server's progress shows it) before the reload:
                # answer_study returns as soon as the key is pressed
                page.wait_for_function("(n) => document.querySelector('#progress-text')"
                                       ".innerText.includes(`(${n} answered)`)",
                                       arg=len(choices))
                page.reload()  # a returning participant continues at item 4
                page.wait_for_function("document.body.dataset.ready")
                assert page.inner_text("#progress-text").startswith(
                    f"Item 4 of {project.items}")
                for _ in range(project.items - len(choices)):
                    shown = page.evaluate("document.body.dataset.ready")
                    page.keyboard.press("A")
                    page.wait_for_function("(old) => document.body.dataset.ready !== old || "
                                           "!document.querySelector('#finished.hidden')",
                                           arg=shown)
                page.wait_for_selector("#finished:visible")
                second = browser.new_page()  # a second participant, one vote
                answer_study(second, server.url, codes[1], "B")
                second.wait_for_function("document.body.dataset.ready && "
                                         "document.querySelector('#progress-text').innerText"
                                         ".includes('(1 answered)')")
                # the server crashes (SIGKILL) and is restarted on the same database: every
                # acknowledged vote is there, the first participant is still finished
                server.crash()
                server = Server(project.root, database)
                page.goto(f"{server.url}/study")  # cookies are per host, not per port
                page.wait_for_selector("#finished:visible")
                assert page.inner_text("#progress-text") == (
                    f"Item {project.items} of {project.items} ({project.items} answered)")
                # the editor is its own server (never beside a study participants can reach)
                editor = Server(project.root, str(tmp_path / "unused.sqlite"), ["--editor"])
                box, edited = edit_in_browser(
                    page, editor.url, "car (26)", (0.2, 0.25), (0.6, 0.8),
                    shots and os.path.join(shots, "huev_editor.png"))
                assert not errors, errors
            finally:
                browser.close()
    finally:
        server.stop()
        if editor is not None:
            editor.stop()
    # stored: every vote, A / B resolved to rows by the server
    votes = VoteStore(database).votes()
    assert len(votes) == project.items + 1
    first = [v for v in votes if v["participant"] == 1]
    assert [v["choice"] for v in first] == list("ABB") + ["A"] * (project.items - 3)
    assert all(v["chosen_row"] == (v["a_row"] if v["choice"] == "A" else v["b_row"])
               for v in votes)
    # aggregated: export, then the huev stage on the exported file
    votes_csv = os.path.join(project.root, "huev", "votes.csv")
    env = dict(os.environ, PYTHONPATH=REPO)
    for command in (["stages.serve", "--database", database, "--export", votes_csv],
                    ["stages.huev", "--reports", "reports"]):
        done = subprocess.run([sys.executable, "-m", *command], cwd=project.root, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    summary = json.loads(open(os.path.join(project.root, "reports", "huev.json")).read())
    assert summary["votes"] == len(votes) and summary["participants"] == 2
    for row in ROWS:
        expected = sum(v["chosen_row"] == row for v in votes)
        assert summary["preference"][row]["votes_for"] == expected
        assert summary["preference"][row]["share"] == pytest.approx(expected / len(votes))
    # the edit: the edit API's own result for the dragged box
    page_maps = build_editor(project.params_path, ROWS[1], project.data_root).maps
    _, labels, instances = page_maps[0]
    editor = load_editor(ROWS[1], params_path=project.params_path)
    assert box[2] - box[0] >= 8 and box[3] - box[1] >= 6
    direct = editor.apply(labels, [Edit(box, "car")], instance_map=instances)
    assert (edited == direct.colour).all()


def test_a_missing_chromium_fails_saying_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.delenv("MEXGAN_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium"):
        chromium_path()
    monkeypatch.setenv("MEXGAN_CHROMIUM", str(tmp_path / "no-such-browser"))
    with pytest.raises(pytest.fail.Exception, match="not an executable"):
        chromium_path()
