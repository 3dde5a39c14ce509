"""What both HTTP apps (the game server, the payments API) put in front of their routes.

Requests are parsed and validated on the event loop (in the game server, the one the game ticks
on), so none may hold it for long; every refusal answers in the project's one error shape
``{"code", "detail"}``:

- ``BodyLimit``: an ASGI middleware refusing a request body larger than ``max_bytes`` before
  anything parses it: at once on its declared ``Content-Length`` (the app never runs, and a
  client waiting for ``100 Continue`` sends nothing), else as the bytes stream in (reading stops
  one chunk past the limit). 413 ``too_large``, and the connection is closed.
- ``validation_detail``: a 422's detail from pydantic's errors without the input: locations and
  messages only, at most ``MAX_ERRORS`` of them, each location part cut to ``MAX_LOC_CHARS``
  (the input can be a password, a 64 KiB string or NaN, which JSON cannot even carry).
- ``install(app, max_body_bytes=...)``: both, plus FastAPI's own ``HTTPException`` s (404,
  405, ...) in the same shape; a body that is JSON but not JSON Python parses (a number of more
  than 4300 digits, nesting too deep, not UTF-8) is a 422 ``invalid_input`` like malformed JSON.
- ``StrictBody``: the base of request bodies: unknown fields are refused with one error
  (pydantic's ``extra="forbid"`` reports each: 5,400 keys fit in 64 KiB and cost the event loop
  ~17 ms to build and convert their errors; ~1.4 ms this way, ``docs/benchmarks.md``).
- ``ErrorPublic`` and ``documented(codes, ...)``: the error shape in the OpenAPI, and the
  ``responses=`` of a route naming each refusal it can answer (by code; ``GUARD_CODES`` are this
  module's) (schemathesis checks that no route answers a
  status it does not document: ``tests/*/test_*schemathesis.py``).
- ``Tinybar``: an amount in either API: a JSON integer in 1..``MAX_TINYBAR``, all the HBAR there
  is (50 billion; 2^63-1, the BIGINT limit, is no number a double holds: tools read it as 2^63).
  A number with a zero fraction (``1263.0``, ``1e3``) is the integer it names, as JSON Schema
  says, while a double holds it exactly (below 2^53); ``1.5``, ``"10"``, ``true`` are refused.
- ``proxy_options(trusted)``: uvicorn's options for forwarded headers. None is believed unless
  the operator names the proxies in front (uvicorn on its own believes any from loopback, so a
  client on the same machine, or behind a proxy that passes the header on, could pick the
  address that sign-in limits count against).
"""

from __future__ import annotations

import http
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "GUARD_CODES",
    "MAX_ERRORS",
    "MAX_LOC_CHARS",
    "MAX_TINYBAR",
    "BodyLimit",
    "BodyTooLargeError",
    "ErrorPublic",
    "StrictBody",
    "Tinybar",
    "documented",
    "error_response",
    "install",
    "proxy_options",
    "validation_detail",
]

MAX_ERRORS = 10  # validation errors listed in one 422 [count]
MAX_LOC_CHARS = 40  # of each part of an error's location (keys of the input) [chars]
# all the HBAR there is (Hedera's fixed supply), in tinybar: no amount can be larger; exact in a
# double, unlike 2^63-1 (the ledger's BIGINT limit), which JSON tools read as 2^63
MAX_TINYBAR = 50_000_000_000 * 100_000_000
_EXACT_IN_A_DOUBLE = 2**53


def _whole_number(value: Any) -> Any:
    """``1263.0`` is 1263 (JSON Schema's integer), if a double carried it exactly."""
    if isinstance(value, float) and value.is_integer():
        if abs(value) < _EXACT_IN_A_DOUBLE:
            return int(value)
        raise PydanticCustomError(
            "int_type", "Input should be a valid integer written without a fraction or an "
                        "exponent (a double cannot hold one this large exactly)")
    return value  # anything else: StrictInt says what is wrong


Tinybar = Annotated[StrictInt, Field(
    gt=0, le=MAX_TINYBAR,
    description="Integer tinybars (1 HBAR = 10^8), at most all the HBAR there is (50 billion)."),
    BeforeValidator(_whole_number)]


class ErrorPublic(BaseModel):
    """Every refusal of both HTTP APIs: a code for programs, a sentence for people."""

    code: str
    detail: str


# the refusals every route of either app may answer: (status, when)
GUARD_CODES: dict[str, tuple[int, str]] = {
    "too_large": (413, "the request body is over the limit (refused before it is parsed; the "
                       "connection is then closed)"),
    "invalid_input": (422, "a body or parameter does not fit; `detail` names each field, never "
                           "the value sent"),
}
_RETRY_AFTER = {"description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 1}}


def documented(codes: Mapping[str, tuple[int, str]], *names: str
               ) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route answering the error ``codes`` named ``names`` (each ``code ->
    (status, when)``): one entry per status, in the error shape, naming its codes."""
    by_status: dict[int, list[str]] = {}
    for name in names:
        status, when = codes[name]
        by_status.setdefault(status, []).append(f"`{name}`: {when}")
    out: dict[int | str, dict[str, Any]] = {}
    for status, lines in sorted(by_status.items()):
        entry: dict[str, Any] = {"model": ErrorPublic, "description": "; ".join(lines) + "."}
        if status == 429:
            entry["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": True}}
        elif status == 503:
            entry["headers"] = {"Retry-After": _RETRY_AFTER}
        out[status] = entry
    return out


def error_response(status_code: int, code: str, detail: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape: ``{"code": ..., "detail": ...}``."""
    return JSONResponse({"code": code, "detail": detail}, status_code=status_code,
                        headers=headers)


class BodyTooLargeError(HTTPException):
    """The request body is over the limit (raised from ``receive``, past FastAPI's parsing)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes",
                         headers={"Connection": "close"})


class BodyLimit:
    """ASGI middleware: HTTP request bodies of at most ``max_bytes`` (module docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLargeError(self.max_bytes)
        if _declared_length(scope["headers"]) > self.max_bytes:
            await _answer(too_large, scope, send)
            return
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLargeError:
            if started:  # the app answered, then read on: nothing else can be said
                raise
            await _answer(too_large, scope, send)


def _declared_length(headers: Sequence[tuple[bytes, bytes]]) -> int:
    """The Content-Length header's value (-1 if none; the server refuses malformed ones)."""
    for name, value in headers:
        if name.lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return -1


async def _answer(exc: HTTPException, scope: Scope, send: Send) -> None:
    response = error_response(exc.status_code, "too_large", str(exc.detail), exc.headers)
    await response(scope, _no_body, send)


async def _no_body() -> Message:  # pragma: no cover - a JSONResponse never receives
    return {"type": "http.disconnect"}


class StrictBody(BaseModel):
    """A request body: no field but the declared ones; unknown ones are ONE error."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = {field.alias or name for name, field in cls.model_fields.items()}
            unknown = [key for key in data if key not in known]
            if unknown:
                named = ", ".join(repr(_cut(str(key))) for key in unknown[:3])
                more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
                raise PydanticCustomError("extra_forbidden", "unknown fields: {named}{more}",
                                          {"named": named, "more": more})
        return data


def validation_detail(errors: Sequence[Any]) -> str:
    """``"body.amount_tinybar: Input should be a valid integer; ..."``: never the input."""
    parts = []
    for error in errors[:MAX_ERRORS]:
        loc = ".".join(_cut(str(part)) for part in error.get("loc", ()))
        parts.append(f"{loc}: {error.get('msg', 'invalid')}")
    if len(errors) > MAX_ERRORS:
        parts.append(f"and {len(errors) - MAX_ERRORS} more errors")
    return "; ".join(parts)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_LOC_CHARS else text[:MAX_LOC_CHARS] + "..."


async def _invalid_request(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_input", validation_detail(exc.errors()))


# FastAPI answers 400 "There was an error parsing the body" when the JSON decoder raises
# something else than a JSONDecodeError (which it makes a 422): a ValueError for an integer of
# more than 4300 digits or bytes that are not UTF-8, a RecursionError for deep nesting
_UNPARSABLE = ("the body is JSON this API does not read: a number of more than 4300 digits, "
               "nesting deeper than about 900 levels, or bytes that are not UTF-8")


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status, headers = exc.status_code, exc.headers
    if status == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        return error_response(422, "invalid_input", _UNPARSABLE)
    if status < 200 or status in (204, 304):
        return Response(status_code=status, headers=headers)
    return error_response(status, _code(status), str(exc.detail), headers)


def _code(status: int) -> str:
    """``too_large`` for 413, else the status's phrase: ``not_found``, ``method_not_allowed``."""
    if status == 413:
        return "too_large"
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        return f"http_{status}"
    return phrase.lower().replace(" ", "_").replace("-", "_")


def install(app: FastAPI, *, max_body_bytes: int) -> None:
    """The body limit and the error shape on ``app`` (see the module docstring)."""
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HTTPException, _http_error)


def proxy_options(trusted_proxies: str) -> dict[str, Any]:
    """``uvicorn.run`` keywords: X-Forwarded-For / -Proto believed only from ``trusted_proxies``
    (comma-separated addresses or networks, as uvicorn's ``forwarded_allow_ips``; empty: none)."""
    trusted = ",".join(part.strip() for part in trusted_proxies.split(",") if part.strip())
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}
