"""The web app (FastAPI), in one of two modes that are never served together: the HuEv study
(Table 1's two-alternative forced choice, paper appendix Fig 9) or the editor page, which runs
pipeline.apps.editing on a test map or an uploaded label PNG. The editor names its model and
reproduces a row's results, so a server that offered both would unblind the study.
A thin layer: items, votes and aggregation live in pipeline.apps.huev, editing in pipeline.apps.editing.
Started by `python -m stages.serve` (study) or `python -m stages.serve --editor` (README,
"Human evaluation (HuEv)").

Study mode (the participant is a random token in an HttpOnly cookie, got with an invitation
code; a trial is one item of one participant, named by an unguessable id; the rows behind A and
B never leave the server):
  GET  /api/study/info                    question, instructions, number of items
  POST /api/study/join {code?}            the code's participant (sets the cookie) -> progress;
       without a code the cookie's participant continues. 403 missing / unknown code.
  GET  /api/study/next                    {done, total, finished, trial | null}
  GET  /api/study/images/{trial}/{kind}   kind: complete | incomplete | A | B (PNG)
  POST /api/study/vote {trial, choice, response_ms?}
       201 stored -> progress; 401 no / unknown participant; 403 the study is closed; 404 trial
       not theirs (forged); 409 item already voted (replayed); 410 item no longer in the study;
       422 malformed.
Editor mode:
  GET  /api/editor/info                   model, dataset, labels (id, name, colour), test maps
  GET  /api/editor/maps/{index}           a test map's colour PNG
  POST /api/editor/preview {upload}       an uploaded label PNG (base64) -> its colour map
  POST /api/editor/edit {map | upload, box, label} -> incomplete, edited map and G_I photo
       400 a bad box, label or file (the editing API's one line); 503 busy (one at a time, or
       EDITOR_BODIES bodies being read). The body is read before the request queues.
Both: every error is {"error": one line}; 413 a body over the mode's limit (from its
Content-Length, or counted while it streams in); 408 a body not in within BODY_TIMEOUT_S; 415
a body that is not application/json; 422 a malformed body (not UTF-8, not strict JSON: duplicate
keys, NaN, integers over 18 digits, lone surrogates; nested too deeply, wrong fields); 429 join
or vote too often from one address, the connection's peer (Retry-After says when to try
again). Nothing is stored when a request is refused.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from pipeline.apps.huev import QUESTION, VoteError, VoteStore, png_bytes

log = logging.getLogger(__name__)
WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
COOKIE = "huev_participant"
IMAGE_KINDS = ("complete", "incomplete", "A", "B")
MAX_UPLOAD_BYTES = 4 * 1024 * 1024  # an uploaded label PNG
MAX_BODY_BYTES = {"study": 16 * 1024,  # a vote or a join is < 200 bytes
                  "editor": MAX_UPLOAD_BYTES * 4 // 3 + 64 * 1024}  # the upload in base64
BODY_TIMEOUT_S = 20  # the whole body must arrive within this (a 5.6 MB upload: 280 KB/s), else 408
EDITOR_WAIT_S = 30  # a preview or edit waits this long for the one before it, then 503
EDITOR_BODIES = 8   # editor bodies read at once (each <= MAX_BODY_BYTES["editor"]), then 503
MAX_INT_DIGITS = 18  # a JSON integer longer than this is refused (no field needs more)


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per client address: `burst` requests at once, refilled at `per_second`."""
    burst: int
    per_second: float


RATE_LIMITS = {"join": RateLimit(burst=10, per_second=1 / 30),  # invitation-code guesses
               "vote": RateLimit(burst=60, per_second=2.0)}     # people take > 1 s an item
INSTRUCTIONS = (
    "This study compares two programs that redraw part of a segmentation map (a picture of a "
    "street scene in which every colour stands for one kind of thing: road, car, person, ...). "
    "For each item you see the complete map, the same map with a box painted in the colour of "
    "the object that should be drawn there (the missing region), and two results, A and B. "
    "Choose the result that fills the missing region better compared with the complete map. "
    "There is no right answer; go with your first impression. Keys: A or B. "
    "Participation is voluntary and anonymous: we store only your invitation code (which we "
    "do not link to your name), a participant number, your choices and the time they took, "
    "no name, e-mail or IP address. You can stop at any time by closing the page; choices made "
    "so far are kept and used for the study's aggregated result.")


class ApiError(Exception):
    """A refused request: `status` and the one-line message of its {"error"} body."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers


class RateLimiter:
    """Token buckets keyed by (action, client address), in memory (addresses are never
    stored). Full buckets are forgotten when more than `max_keys` are held."""

    def __init__(self, limits: dict, clock=time.monotonic, max_keys: int = 10_000):
        self.limits, self.clock, self.max_keys = limits, clock, max_keys
        self.buckets = {}  # (action, address) -> (tokens, time)
        self.lock = threading.Lock()

    def take(self, action: str, address: str) -> float:
        """Take one token; returns 0, or the seconds until one is available (refused)."""
        limit = self.limits[action]
        now = self.clock()
        with self.lock:
            tokens, then = self.buckets.get((action, address), (limit.burst, now))
            tokens = min(limit.burst, tokens + (now - then) * limit.per_second)
            if tokens < 1:
                self.buckets[(action, address)] = (tokens, now)
                return (1 - tokens) / limit.per_second
            self.buckets[(action, address)] = (tokens - 1, now)
            if len(self.buckets) > self.max_keys:
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now):
        for key, (tokens, then) in list(self.buckets.items()):
            limit = self.limits[key[0]]
            if tokens + (now - then) * limit.per_second >= limit.burst:
                del self.buckets[key]


class BodyLimit:
    """ASGI middleware: 413 for a request body over `limit` bytes, from its Content-Length
    before anything is read, or while it streams in (no or a false Content-Length) as soon as
    the bytes received pass the limit; 408 when the body has not arrived `timeout` seconds after
    the request's headers (a slow or stalled client). Both close the connection."""

    def __init__(self, app, limit: int, timeout: float | None = None):
        self.app, self.limit, self.timeout = app, limit, timeout

    def _message(self) -> str:
        return f"request body larger than {self.limit} bytes"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            return await _error(413, self._message(), CLOSE)(scope, receive, send)
        received = 0
        timeout = BODY_TIMEOUT_S if self.timeout is None else self.timeout
        deadline = time.monotonic() + timeout

        async def counted():
            nonlocal received
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())) as waited:
                message = await receive()
            if waited.cancelled_caught:
                raise ApiError(408, f"the request body did not arrive within {timeout:g} s",
                               headers=CLOSE)
            received += len(message.get("body", b""))
            if received > self.limit:
                raise ApiError(413, self._message(), headers=CLOSE)
            return message

        await self.app(scope, counted, send)


CLOSE = {"Connection": "close"}  # the server closes the connection after this answer


async def read_json(request: Request, model):
    """The request's JSON body validated by a pydantic model (an empty body is {}); ApiError
    415 / 422 with one line for a body that is not application/json, UTF-8, strict JSON (no
    duplicate keys, NaN, integers over MAX_INT_DIGITS digits or lone surrogates) or the model.
    Read through BodyLimit's count and timeout."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if not raw:
        data = {}
    else:
        if media != "application/json":
            raise ApiError(415, f"send the body as application/json, not "
                                f"{media or 'without a content type'}")
        data = strict_json(raw)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ApiError(422, _validation_message(err.errors(include_url=False))) from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ApiError(422, f"malformed request: an integer with {len(text.lstrip('-'))} "
                            f"digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _no_constant(name: str):
    raise ApiError(422, f"malformed request: {name} is not a JSON number")


def _unique_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ApiError(422, f"malformed request: duplicate key {_shown(key)}")
        seen[key] = value
    return seen


def _shown(text: str) -> str:
    return ascii(text[:40])


def strict_json(raw: bytes):
    """A JSON body decoded strictly; ApiError 422 with one line on anything else."""
    try:
        data = json.loads(raw.decode("utf-8"), parse_int=_bounded_int,
                          parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise ApiError(422, "malformed request: the body is not UTF-8") from None
    except json.JSONDecodeError as err:
        raise ApiError(422, f"malformed request: not JSON ({err.msg} at line {err.lineno} "
                            f"column {err.colno})") from None
    except RecursionError:
        raise ApiError(422, "malformed request: the JSON nests too deeply") from None
    except ValueError as err:  # anything else json refuses: one line, never a 500
        raise ApiError(422, f"malformed request: {' '.join(str(err).split())[:120]}") from None
    stack = [data]
    while stack:  # "\ud800" decodes to a lone surrogate, which no UTF-8 store can hold
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and not _encodable(value):
            raise ApiError(422, f"malformed request: the string {_shown(value)} holds a lone "
                                "surrogate (not a Unicode character)")
    return data


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _validation_message(errors) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"malformed request: {where or 'body'}: {first.get('msg', 'invalid')}"


@dataclass
class Study:
    """The study's items (pipeline.apps.huev.choose_items), its two rows and its vote store."""
    items: list
    rows: tuple
    store: VoteStore
    secret: bytes = field(default=b"", repr=False)  # the study secret (pipeline.apps.huev)
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
    """The editor page's backend: a pipeline.apps.editing Editor and the test maps it offers
    (name, (H, W) label ids, (H, W) instance ids). A request's body is read first (bounded in
    size and time, at most EDITOR_BODIES at once), then one preview or edit runs at a time
    (`busy`): the decoded map and the model's tensors exist only while it runs."""
    editor: object
    maps: list
    busy: threading.Lock = field(default_factory=threading.Lock)
    reading: int = 0   # bodies being read now (at most EDITOR_BODIES)
    reading_lock: threading.Lock = field(default_factory=threading.Lock)


class Join(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    code: str | None = None


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


def build_study(params, database: str, results: str, secret: str | None = None) -> Study:
    """The study of params huev: items from the evaluate stage's results folder, chosen by the
    study secret (`secret`, default study.secret beside the database, made when missing;
    pipeline.apps.huev.choose_items: never a test box the committed figures show), votes in
    `database` (trials of items or rows no longer in the study are skipped). Imports no torch."""
    from pipeline.config.validation import check_huev_rows
    from pipeline.data.datasets import get_spec
    from pipeline.apps.huev import choose_items, load_items, secret_path, study_secret
    dataset = check_huev_rows(params)
    key = study_secret(secret or secret_path(database))
    items = choose_items(load_items(results, params.huev.rows, get_spec(dataset).palette), key,
                         params.huev.items, shown=params.evaluate.grid_images)
    rows = tuple(params.huev.rows)
    return Study(items=items, rows=rows, secret=key,
                 store=VoteStore(database, items=[item.key for item in items], rows=rows))


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


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


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


def create_app(study: Study | None = None, editor: EditorPage | None = None, *,
               rate_limits: dict = RATE_LIMITS, clock=time.monotonic) -> FastAPI:
    """The app of one mode: the study (`study`) or the editor page (`editor`), never both (the
    editor would unblind the study). rate_limits / clock: the study's per-address limits on
    join and vote (RATE_LIMITS)."""
    if (study is None) == (editor is None):
        raise ValueError("serve either the study or the editor: the editor names its model "
                         "and reproduces a row's results, so it would unblind the study")
    mode = "study" if study is not None else "editor"
    app = FastAPI(title=f"MExGAN {'HuEv study' if study else 'editor'}", docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES[mode], timeout=None)

    @app.exception_handler(ApiError)
    async def refused(request: Request, err: ApiError):
        return _error(err.status, str(err), err.headers)

    @app.exception_handler(VoteError)
    async def vote_refused(request: Request, err: VoteError):
        return _error(err.status, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        return _error(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, err: RequestValidationError):
        return _error(422, _validation_message(err.errors()))

    static = {"style.css": "text/css", f"{mode}.js": "text/javascript"}

    @app.get("/", include_in_schema=False)
    def home():
        return RedirectResponse(f"/{mode}")

    @app.get(f"/{mode}", include_in_schema=False)
    def page():
        return FileResponse(os.path.join(WEB_DIR, f"{mode}.html"), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str):
        if name not in static:
            raise ApiError(404, f"no file {name!r}")
        return FileResponse(os.path.join(WEB_DIR, name), media_type=static[name])

    app.state.study, app.state.editor = study, editor
    if study is not None:
        _study_routes(app, study, RateLimiter(rate_limits, clock))
    else:
        _editor_routes(app, editor)
    return app


def _study_routes(app: FastAPI, study: Study, limiter: RateLimiter) -> None:
    store = study.store

    def limit(request: Request, action: str):
        address = request.client.host if request.client else "unknown"
        wait = limiter.take(action, address)
        if wait:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"too many {action} requests from this address: try again in "
                                f"{seconds} s", headers={"Retry-After": str(seconds)})

    @app.get("/api/study/info")
    def study_info():
        return {"question": QUESTION, "instructions": INSTRUCTIONS, "items": len(study.items)}

    @app.post("/api/study/join")
    async def join(request: Request):
        limit(request, "join")
        body = await read_json(request, Join)

        def participant():
            if body.code is None:  # a returning participant (cookie) continues
                try:
                    cookie = request.cookies.get(COOKIE)
                    return cookie, store.progress(cookie)
                except VoteError as err:
                    if err.status != 401:
                        raise
            token = store.join(body.code, study.items, study.rows)
            return token, store.progress(token)

        token, progress = await run_in_threadpool(participant)
        response = JSONResponse(_public(progress))
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                            max_age=90 * 24 * 3600)
        return response

    @app.get("/api/study/next")
    def next_trial(request: Request):
        return _public(store.progress(request.cookies.get(COOKIE)))

    @app.get("/api/study/images/{trial}/{kind}")
    def image(trial: str, kind: str, request: Request):
        if kind not in IMAGE_KINDS:
            raise ApiError(404, f"no image {kind!r} (one of {', '.join(IMAGE_KINDS)})")
        found = store.trial(request.cookies.get(COOKIE), trial)
        return Response(study.image(found["item"], kind, found), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/study/vote")
    async def vote(request: Request):
        limit(request, "vote")
        body = await read_json(request, Vote)
        progress = await run_in_threadpool(store.vote, request.cookies.get(COOKIE), body.trial,
                                           body.choice, body.response_ms)
        return JSONResponse(_public(progress), status_code=201)


def _editor_routes(app: FastAPI, page: EditorPage) -> None:
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


def _public(progress: dict) -> dict:
    """A participant's progress without anything that names a row or an item."""
    nxt = progress["next"]
    return {"done": progress["done"], "total": progress["total"],
            "finished": nxt is None, "trial": None if nxt is None else nxt["trial"]}
