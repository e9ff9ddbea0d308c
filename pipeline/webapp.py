"""The web app (FastAPI): the HuEv study (Table 1's two-alternative forced choice, paper appendix
Fig 9) and an editor page that runs pipeline.editing on a test map or an uploaded label PNG.
A thin layer: items, votes and aggregation live in pipeline.huev, editing in pipeline.editing.
Started by `python -m stages.serve` (README, "Human evaluation (HuEv)").

Study API (the participant is a random token in an HttpOnly cookie; a trial is one item of one
participant, named by an unguessable id; the rows behind A and B never leave the server):
  POST /api/study/join                    new participant (sets the cookie) -> progress
  GET  /api/study/next                    {done, total, trial | null, position}
  GET  /api/study/images/{trial}/{kind}   kind: complete | incomplete | A | B (PNG)
  POST /api/study/vote {trial, choice, response_ms?}
       201 stored -> progress; 401 no / unknown participant; 404 trial not theirs (forged);
       409 item already voted (replayed); 422 malformed. Nothing is stored when refused.
Editor API:
  GET  /api/editor/info                   dataset, labels (id, name, colour), test maps
  GET  /api/editor/maps/{index}           a test map's colour PNG
  POST /api/editor/preview {upload}       an uploaded label PNG (base64) -> its colour map
  POST /api/editor/edit {map | upload, box, label} -> incomplete, edited map and G_I photo
"""
from __future__ import annotations

import base64
import binascii
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict

from pipeline.huev import QUESTION, VoteError, VoteStore, png_bytes

log = logging.getLogger(__name__)
WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
COOKIE = "huev_participant"
IMAGE_KINDS = ("complete", "incomplete", "A", "B")
MAX_UPLOAD_BYTES = 4 * 1024 * 1024
INSTRUCTIONS = (
    "This study compares two programs that redraw part of a segmentation map (a picture of a "
    "street scene in which every colour stands for one kind of thing: road, car, person, ...). "
    "For each item you see the complete map, the same map with a box painted in the colour of "
    "the object that should be drawn there (the missing region), and two results, A and B. "
    "Choose the result that fills the missing region better compared with the complete map. "
    "There is no right answer; go with your first impression. Keys: A or B. "
    "Participation is voluntary and anonymous: we store only a random participant number, "
    "your choices and the time they took, no name, e-mail or IP address. You can stop at any "
    "time by closing the page; choices made so far are kept and used for the study's "
    "aggregated result.")


@dataclass
class Study:
    """The study's items (pipeline.huev.load_items), its two rows and its vote store."""
    items: list
    rows: tuple
    store: VoteStore
    _images: dict = field(default_factory=dict)

    def __post_init__(self):
        self.by_key = {item.key: item for item in self.items}

    def image(self, item_key: str, kind: str, rows: dict) -> bytes:
        """PNG of one picture of an item; kind A / B is the row the trial assigned to it."""
        item = self.by_key[item_key]
        source = {"complete": ("complete", None), "incomplete": ("incomplete", None),
                  "A": ("result", rows["A"]), "B": ("result", rows["B"])}[kind]
        key = (item_key, *source)
        if key not in self._images:
            image = (item.results[source[1]] if source[0] == "result"
                     else getattr(item, source[0]))
            self._images[key] = png_bytes(image)
        return self._images[key]


@dataclass
class EditorPage:
    """The editor page's backend: a pipeline.editing Editor and the test maps it offers
    (name, (H, W) label ids, (H, W) instance ids)."""
    editor: object
    maps: list
    lock: threading.Lock = field(default_factory=threading.Lock)


class Vote(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    trial: str
    choice: str
    response_ms: int | None = None


class Upload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    upload: str


class EditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    map: int | None = None
    upload: str | None = None
    box: list[int]
    label: int | str


def build_study(params, database: str, results: str) -> Study:
    """The study of params huev: items from the evaluate stage's results folder, votes in
    `database`."""
    from pipeline.config import check_huev_rows
    from pipeline.datasets import get_spec
    from pipeline.huev import load_items
    dataset = check_huev_rows(params)
    items = load_items(results, params.huev.rows, get_spec(dataset).palette, params.huev.items)
    return Study(items=items, rows=tuple(params.huev.rows), store=VoteStore(database))


def build_editor(params_path: str, row: str, data_root: str, max_maps: int = 50) -> EditorPage:
    """The editor page of a row (pipeline.editing.load_editor) with the first `max_maps` test
    maps of its dataset (none, uploads only, when the data is not prepared)."""
    from pipeline.datasets import read_split
    from pipeline.editing import load_editor
    editor = load_editor(row, params_path=params_path)
    maps = []
    test = os.path.join(data_root, editor.dataset, "test.h5")
    if os.path.exists(test):
        split = read_split(test)
        maps = [(name, split.labels[i].astype("int64"), split.instances[i].astype("int64"))
                for i, name in enumerate(split.names[:max_maps])]
    else:
        log.warning("%s does not exist: the editor offers uploads only (dvc repro prepare)",
                    test)
    return EditorPage(editor=editor, maps=maps)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _data_url(image) -> str | None:
    if image is None:
        return None
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def _decode_upload(text: str) -> bytes:
    """The bytes of a base64 upload (a data URL or plain base64); ValueError when malformed or
    too large."""
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    if len(text) > MAX_UPLOAD_BYTES * 4 // 3 + 4:
        raise ValueError(f"uploaded file is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("uploaded file: not valid base64") from None


def read_upload(text: str, editor) -> np.ndarray:
    """An uploaded label PNG (base64) -> (H, W) label ids, read by pipeline.editing's
    read_label_map (ValueError naming "uploaded file" on a bad one)."""
    from pipeline.editing import read_label_map
    data = _decode_upload(text)
    with tempfile.TemporaryDirectory(prefix="mexgan-upload-") as folder:
        path = os.path.join(folder, "upload.png")
        with open(path, "wb") as f:
            f.write(data)
        try:
            return read_label_map(path, editor)
        except ValueError as err:
            raise ValueError(str(err).replace(path, "uploaded file")) from None


def create_app(study: Study | None = None, editor: EditorPage | None = None, *,
               unavailable: dict | None = None) -> FastAPI:
    """The app. study / editor: None when that page is unavailable; unavailable: page ->
    the reason shown instead (e.g. "run dvc repro evaluate")."""
    unavailable = dict(unavailable or {})
    app = FastAPI(title="MExGAN HuEv study and editor", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, f"malformed request: {where or 'body'}: "
                           f"{first.get('msg', 'invalid')}")

    for page in ("index", "study", "editor"):
        app.add_api_route("/" if page == "index" else f"/{page}",
                          _page(f"{page}.html"), methods=["GET"], include_in_schema=False)

    # -- study --------------------------------------------------------------------------

    def need_study():
        if study is None:
            raise VoteError(503, unavailable.get("study", "the study is not configured"))
        return study

    @app.exception_handler(VoteError)
    async def refused(request: Request, err: VoteError):
        return _error(err.status, str(err))

    @app.get("/api/study/info")
    def study_info():
        if study is None:
            return {"available": False, "reason": unavailable.get("study", "")}
        return {"available": True, "question": QUESTION, "instructions": INSTRUCTIONS,
                "items": len(study.items)}

    @app.post("/api/study/join")
    def join(request: Request):
        s = need_study()
        token = request.cookies.get(COOKIE)
        try:
            progress = s.store.progress(token)  # an existing participant continues
        except VoteError:
            token = s.store.join(s.items, s.rows)
            progress = s.store.progress(token)
        response = JSONResponse(_public(progress))
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                            max_age=90 * 24 * 3600)
        return response

    @app.get("/api/study/next")
    def next_trial(request: Request):
        s = need_study()
        return _public(s.store.progress(request.cookies.get(COOKIE)))

    @app.get("/api/study/images/{trial}/{kind}")
    def image(trial: str, kind: str, request: Request):
        s = need_study()
        if kind not in IMAGE_KINDS:
            raise VoteError(404, f"no image {kind!r} (one of {', '.join(IMAGE_KINDS)})")
        found = s.store.trial(request.cookies.get(COOKIE), trial)
        if found["item"] not in s.by_key:
            raise VoteError(410, "this item is no longer part of the study")
        return Response(s.image(found["item"], kind, found), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/study/vote", status_code=201)
    def vote(body: Vote, request: Request):
        s = need_study()
        progress = s.store.vote(request.cookies.get(COOKIE), body.trial, body.choice,
                                body.response_ms)
        return _public(progress)

    # -- editor -------------------------------------------------------------------------

    def need_editor():
        if editor is None:
            raise VoteError(503, unavailable.get("editor", "the editor is not configured"))
        return editor

    @app.get("/api/editor/info")
    def editor_info():
        if editor is None:
            return {"available": False, "reason": unavailable.get("editor", "")}
        e = editor.editor
        return {"available": True, "dataset": e.dataset, "row": e.row,
                "size": [e.width, e.height],
                "labels": [{"id": i, "name": name, "colour": [int(c) for c in e.palette[i]]}
                           for i, name in enumerate(e.label_names)],
                "edit_classes": [int(c) for c in e.meta.get("edit_classes", [])],
                "maps": [{"index": i, "name": name, "width": int(labels.shape[1]),
                          "height": int(labels.shape[0])}
                         for i, (name, labels, _) in enumerate(editor.maps)]}

    @app.get("/api/editor/maps/{index}")
    def editor_map(index: int):
        page = need_editor()
        if not 0 <= index < len(page.maps):
            raise VoteError(404, f"no test map {index} (0..{len(page.maps) - 1})")
        return Response(png_bytes(page.editor.palette[page.maps[index][1]]),
                        media_type="image/png")

    @app.post("/api/editor/preview")
    def preview(body: Upload):
        page = need_editor()
        try:
            labels = read_upload(body.upload, page.editor)
        except ValueError as err:
            return _error(400, " ".join(str(err).split()))
        return {"width": int(labels.shape[1]), "height": int(labels.shape[0]),
                "image": _data_url(page.editor.palette[labels])}

    @app.post("/api/editor/edit")
    def edit(body: EditRequest):
        from pipeline.editing import Edit
        page = need_editor()
        if (body.map is None) == (body.upload is None):
            return _error(422, "give either map (a test map's index) or upload (a label PNG)")
        try:
            if body.map is not None:
                if not 0 <= body.map < len(page.maps):
                    raise ValueError(f"no test map {body.map} (0..{len(page.maps) - 1})")
                _, labels, instances = page.maps[body.map]
            else:
                labels, instances = read_upload(body.upload, page.editor), None
            with page.lock:  # one edit at a time: the CPU is shared
                result = page.editor.apply(labels, [Edit(tuple(body.box), body.label)],
                                           instance_map=instances)
        except ValueError as err:
            return _error(400, " ".join(str(err).split()))
        return {"width": int(labels.shape[1]), "height": int(labels.shape[0]),
                "changed_pixels": int((result.labels != labels).sum()),
                "input": _data_url(page.editor.palette[labels]),
                "incomplete": _data_url(result.incomplete), "edited": _data_url(result.colour),
                "photo": _data_url(result.photo)}

    return app


def _public(progress: dict) -> dict:
    """A participant's progress without anything that names a row or an item."""
    nxt = progress["next"]
    return {"done": progress["done"], "total": progress["total"],
            "finished": nxt is None, "trial": None if nxt is None else nxt["trial"]}


def _page(name: str):
    path = os.path.join(WEB_DIR, name)

    def page():
        return FileResponse(path, media_type="text/html")
    return page
