"""Screenshots of the HuEv study and the editor page for the README (docs/huev_study.png,
docs/huev_editor.png), taken with the browser test's Playwright + system Chromium on a project
after `dvc repro` (its evaluate results and models):

  .venv/bin/python tools/screenshots.py [--root .] [--out docs]

A throw-away votes database is used; the project's own is not touched."""
import argparse
import os
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import stages  # noqa: E402,F401 - CPU set-up (pipeline.training.platform) before torch is imported


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="project with artifacts/ (after dvc repro)")
    parser.add_argument("--out", default=os.path.join(REPO, "docs"))
    parser.add_argument("--label", default="car (26)", help="target label option of the edit")
    parser.add_argument("--editor-row", help="the editor's model (default: params "
                        "huev.editor_row), e.g. models/mexgan-cityscapes/seed0")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from pipeline.apps.huev_votes import VoteStore
    from tests.test_browser import Server, answer_study, chromium_path, edit_in_browser
    os.makedirs(args.out, exist_ok=True)
    root = os.path.abspath(args.root)
    with tempfile.TemporaryDirectory() as scratch:
        database = os.path.join(scratch, "votes.sqlite")
        code = VoteStore(database).invite(1)[0]
        # the study and the editor are never served together (blinding): two servers
        study = Server(root, database)
        editor = None
        try:
            editor = Server(root, os.path.join(scratch, "editor.sqlite"),
                            ["--editor"] + (["--editor-row", args.editor_row]
                                            if args.editor_row else []))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), headless=True,
                                            args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 900, "height": 720})
                answer_study(page, study.url, code, "AB",
                             os.path.join(args.out, "huev_study.png"))
                edit_in_browser(page, editor.url, args.label, (0.3, 0.45), (0.6, 0.9),
                                os.path.join(args.out, "huev_editor.png"))
                browser.close()
        finally:
            study.stop()
            if editor is not None:
                editor.stop()
    print(f"screenshots -> {args.out}/huev_study.png, huev_editor.png")


if __name__ == "__main__":
    main()
