"""The web app (FastAPI), in one of two modes that are never served together: the HuEv study
(Table 1's two-alternative forced choice, paper appendix Fig 9) or the editor page, which runs
pipeline.apps.editing on a test map or an uploaded label PNG. The editor names its model and
reproduces a row's results, so a server that offered both would unblind the study.
A thin layer: items live in pipeline.apps.huev, votes in pipeline.apps.huev_votes, editing in
pipeline.apps.editing; this module makes the app of a mode, whose routes are in
pipeline.apps.webapp_study and pipeline.apps.webapp_editor (what both do with a request:
pipeline.apps.webapp_http).
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

import os
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse
from starlette.exceptions import HTTPException

from pipeline.apps.huev_votes import VoteError
from pipeline.apps.webapp_editor import MAX_UPLOAD_BYTES, EditorPage, editor_routes
from pipeline.apps.webapp_http import (ApiError, BodyLimit, RateLimiter, error_response,
                                       validation_message)
from pipeline.apps.webapp_study import RATE_LIMITS, Study, study_routes

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
MAX_BODY_BYTES = {"study": 16 * 1024,  # a vote or a join is < 200 bytes
                  "editor": MAX_UPLOAD_BYTES * 4 // 3 + 64 * 1024}  # the upload in base64


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
        return error_response(err.status, str(err), err.headers)

    @app.exception_handler(VoteError)
    async def vote_refused(request: Request, err: VoteError):
        return error_response(err.status, str(err))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException):
        return error_response(err.status_code, str(err.detail), getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, err: RequestValidationError):
        return error_response(422, validation_message(err.errors()))

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
        study_routes(app, study, RateLimiter(rate_limits, clock))
    else:
        editor_routes(app, editor)
    return app
