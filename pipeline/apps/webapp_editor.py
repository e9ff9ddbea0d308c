"""The web app's editor mode (pipeline.apps.webapp): pipeline.apps.editing on a test map or an
uploaded label PNG. A request's body is read first (bounded in size and time, at most
EDITOR_BODIES at once), then one preview or edit runs at a time."""
from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from pipeline.apps.webapp_http import ApiError, png_bytes, read_json

log = logging.getLogger("pipeline.apps.webapp")  # one log for the web app's modules
MAX_UPLOAD_BYTES = 4 * 1024 * 1024  # an uploaded label PNG
EDITOR_WAIT_S = 30  # a preview or edit waits this long for the one before it, then 503
EDITOR_BODIES = 8   # editor bodies read at once (each <= MAX_BODY_BYTES["editor"]), then 503


@dataclass
class EditorPage:
    """The editor page's backend: a pipeline.apps.editing Editor and the test maps it offers
    (name, (H, W) label ids, (H, W) instance ids). A request's body is read first (bounded in
    size and time, at most EDITOR_BODIES at once), then one preview or edit runs at a time
    (`busy`): the decoded map and the model's tensors exist only while it runs."""
    editor: object
    maps: list
    busy: threading.Lock = field(default_factory=threading.Lock)
    reading: int = 0   # bodies being read now (at most EDITOR_BODIES)
    reading_lock: threading.Lock = field(default_factory=threading.Lock)


class Upload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    upload: str


class EditRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    map: int | None = None
    upload: str | None = None
    box: list[int]
    label: int | str


def build_editor(params_path: str, row: str, data_root: str, max_maps: int = 50) -> EditorPage:
    """The editor page of a row (pipeline.apps.editing.load_editor, which imports torch) with the
    first `max_maps` test maps of its dataset (none, uploads only, when the data is not
    prepared)."""
    from pipeline.data.datasets import read_split
    from pipeline.apps.editing import load_editor
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
    """An uploaded label PNG (base64) -> (H, W) label ids, read by pipeline.apps.editing's
    read_label_map (ValueError naming "uploaded file" on a bad one, e.g. over its size
    limit, which it checks from the header before decoding)."""
    from pipeline.apps.editing_maps import read_label_map
    data = _decode_upload(text)
    with tempfile.TemporaryDirectory(prefix="mexgan-upload-") as folder:
        path = os.path.join(folder, "upload.png")
        with open(path, "wb") as f:
            f.write(data)
        try:
            return read_label_map(path, editor)
        except ValueError as err:
            raise ValueError(str(err).replace(path, "uploaded file")) from None


def editor_routes(app: FastAPI, page: EditorPage) -> None:
    e = page.editor

    @contextlib.asynccontextmanager
    async def one_at_a_time():
        """Wait (polling, so a client that goes away leaves nothing held) up to EDITOR_WAIT_S
        for the request before this one; 503 after that."""
        deadline = time.monotonic() + EDITOR_WAIT_S
        while not page.busy.acquire(blocking=False):
            if time.monotonic() > deadline:
                raise ApiError(503, "the editor is busy with other requests: try again in a "
                                    "moment", headers={"Retry-After": "5"})
            await anyio.sleep(0.05)
        try:
            yield
        finally:
            page.busy.release()

    @app.get("/api/editor/info")
    def editor_info():
        return {"dataset": e.dataset, "row": e.row, "size": [e.width, e.height],
                "labels": [{"id": i, "name": name, "colour": [int(c) for c in e.palette[i]]}
                           for i, name in enumerate(e.label_names)],
                "edit_classes": [int(c) for c in e.meta.get("edit_classes", [])],
                "maps": [{"index": i, "name": name, "width": int(labels.shape[1]),
                          "height": int(labels.shape[0])}
                         for i, (name, labels, _) in enumerate(page.maps)]}

    @app.get("/api/editor/maps/{index}")
    def editor_map(index: int):
        if not 0 <= index < len(page.maps):
            raise ApiError(404, f"no test map {index} (0..{len(page.maps) - 1})")
        return Response(png_bytes(e.palette[page.maps[index][1]]), media_type="image/png")

    def run_preview(body: Upload):
        try:
            labels = read_upload(body.upload, e)
        except ValueError as err:
            raise ApiError(400, " ".join(str(err).split())) from None
        return {"width": int(labels.shape[1]), "height": int(labels.shape[0]),
                "image": _data_url(e.palette[labels])}

    def run_edit(body: EditRequest):
        from pipeline.apps.editing import Edit
        if (body.map is None) == (body.upload is None):
            raise ApiError(422, "give either map (a test map's index) or upload (a label PNG)")
        try:
            if body.map is not None:
                if not 0 <= body.map < len(page.maps):
                    raise ValueError(f"no test map {body.map} (0..{len(page.maps) - 1})")
                _, labels, instances = page.maps[body.map]
            else:
                labels, instances = read_upload(body.upload, e), None
            result = e.apply(labels, [Edit(tuple(body.box), body.label)],
                             instance_map=instances)
        except ValueError as err:
            raise ApiError(400, " ".join(str(err).split())) from None
        return {"width": int(labels.shape[1]), "height": int(labels.shape[0]),
                "changed_pixels": int((result.labels != labels).sum()),
                "input": _data_url(e.palette[labels]),
                "incomplete": _data_url(result.incomplete), "edited": _data_url(result.colour),
                "photo": _data_url(result.photo)}

    @contextlib.contextmanager
    def body_slot():
        """One of EDITOR_BODIES places to read a body in (503 when all are taken): bodies are
        read before the editor's lock, so a slow client never holds it, and at most
        EDITOR_BODIES bodies (each bounded in size and time by BodyLimit) are held at once."""
        with page.reading_lock:
            if page.reading >= EDITOR_BODIES:
                raise ApiError(503, "the editor is receiving too many uploads: try again in a "
                                    "moment", headers={"Retry-After": "5"})
            page.reading += 1
        try:
            yield
        finally:
            with page.reading_lock:
                page.reading -= 1

    async def body_then_turn(request: Request, model, work):
        with body_slot():
            body = await read_json(request, model)
            async with one_at_a_time():
                return await run_in_threadpool(work, body)

    @app.post("/api/editor/preview")
    async def preview(request: Request):
        return await body_then_turn(request, Upload, run_preview)

    @app.post("/api/editor/edit")
    async def edit(request: Request):
        return await body_then_turn(request, EditRequest, run_edit)
