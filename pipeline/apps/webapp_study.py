"""The web app's study mode (pipeline.apps.webapp): HuEv's two-alternative forced choice
(Table 1, paper appendix Fig 9) over pipeline.apps.huev's items and pipeline.apps.huev_votes'
store. The participant is a random token in an HttpOnly cookie, got with an invitation code;
a trial is one item of one participant, named by an unguessable id; the rows behind A and B
never leave the server."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from pipeline.apps.huev import QUESTION, choose_items, load_items, secret_path, study_secret
from pipeline.apps.huev_votes import VoteError, VoteStore
from pipeline.apps.webapp_http import ApiError, RateLimit, RateLimiter, png_bytes, read_json

COOKIE = "huev_participant"
IMAGE_KINDS = ("complete", "incomplete", "A", "B")
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


class Join(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    code: str | None = None


class Vote(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    trial: str
    choice: str
    response_ms: int | None = None


def build_study(params, database: str, results: str, secret: str | None = None) -> Study:
    """The study of params huev: items from the evaluate stage's results folder, chosen by the
    study secret (`secret`, default study.secret beside the database, made when missing;
    pipeline.apps.huev.choose_items: never a test box the committed figures show), votes in
    `database` (trials of items or rows no longer in the study are skipped). Imports no torch."""
    from pipeline.config.validation import check_huev_rows
    from pipeline.data.sets import get_spec
    dataset = check_huev_rows(params)
    key = study_secret(secret or secret_path(database))
    items = choose_items(load_items(results, params.huev.rows, get_spec(dataset).palette), key,
                         params.huev.items, shown=params.evaluate.grid_images)
    rows = tuple(params.huev.rows)
    return Study(items=items, rows=rows, secret=key,
                 store=VoteStore(database, items=[item.key for item in items], rows=rows))


def study_routes(app: FastAPI, study: Study, limiter: RateLimiter) -> None:
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


def _public(progress: dict) -> dict:
    """A participant's progress without anything that names a row or an item."""
    nxt = progress["next"]
    return {"done": progress["done"], "total": progress["total"],
            "finished": nxt is None, "trial": None if nxt is None else nxt["trial"]}
