"""What both modes of the web app (pipeline.apps.webapp) do with a request before a route
runs, and the PNG bodies they answer with: a refusal is ApiError, answered as {"error": one
line}; BodyLimit bounds a body in size and time; read_json decodes it strictly and validates it;
RateLimiter keeps the per-address token buckets of join and vote."""
from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass

import anyio
import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

BODY_TIMEOUT_S = 20  # the whole body must arrive within this (a 5.6 MB upload: 280 KB/s), else 408
MAX_INT_DIGITS = 18  # a JSON integer longer than this is refused (no field needs more)


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per client address: `burst` requests at once, refilled at `per_second`."""
    burst: int
    per_second: float


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
            return await error_response(413, self._message(), CLOSE)(scope, receive, send)
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
        raise ApiError(422, validation_message(err.errors(include_url=False))) from None


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


def validation_message(errors) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return f"malformed request: {where or 'body'}: {first.get('msg', 'invalid')}"


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def png_bytes(image: np.ndarray) -> bytes:
    """A (H, W, 3) uint8 image as PNG bytes (no metadata)."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
