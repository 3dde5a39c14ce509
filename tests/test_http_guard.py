"""The guard in front of both HTTP apps: body limit before parsing, errors without the input."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from crowdlearning.http_guard import (
    MAX_ERRORS,
    MAX_LOC_CHARS,
    BodyLimit,
    StrictBody,
    install,
    proxy_options,
    validation_detail,
)

LIMIT = 1000


class Probe:
    """An ASGI app that reads the whole body (as a JSON route would) and answers 200."""

    def __init__(self) -> None:
        self.called = self.completed = False
        self.body = b""

    async def __call__(self, scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
        self.called = True
        if scope["type"] == "http":
            more = True
            while more:
                message = await receive()
                self.body += message.get("body", b"")
                more = message.get("more_body", False)
        self.completed = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _call(app, headers: list[tuple[bytes, bytes]], chunks):  # type: ignore[no-untyped-def]
    """Run one HTTP request through ``app``; returns (status, headers, body, chunks read)."""
    sent: list[dict] = []
    reads = 0
    source = iter(chunks)

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body, reads


def test_a_declared_length_over_the_limit_is_413_and_the_app_never_runs() -> None:
    probe = Probe()
    status, headers, body, reads = _call(
        BodyLimit(probe, LIMIT), [(b"content-length", b"12000000")], [b"x" * 100])
    assert status == 413 and not probe.called and reads == 0  # not a byte read
    assert json.loads(body) == {"code": "too_large",
                                "detail": f"request body larger than {LIMIT} bytes"}
    assert headers[b"connection"] == b"close"


def test_an_endless_streamed_body_is_cut_at_the_limit() -> None:
    # GIVEN a body without a length that never ends (chunked transfer)
    probe = Probe()
    endless = (b"x" * 300 for _ in range(10**9))
    # WHEN it is sent through the limit
    status, _, body, reads = _call(BodyLimit(probe, LIMIT), [], endless)
    # THEN reading stopped one chunk past the limit and the app never finished
    assert status == 413 and json.loads(body)["code"] == "too_large"
    assert reads == 4 and probe.called and not probe.completed


def test_bodies_up_to_the_limit_pass_whole() -> None:
    probe = Probe()
    status, _, body, _ = _call(BodyLimit(probe, LIMIT), [(b"content-length", b"1000")],
                               [b"x" * 500, b"y" * 500])
    assert (status, body, probe.body) == (200, b"ok", b"x" * 500 + b"y" * 500)


def test_websockets_pass_through() -> None:
    probe = Probe()
    asyncio.run(BodyLimit(probe, LIMIT)({"type": "websocket"}, None, _ignore))
    assert probe.completed


async def _ignore(message: dict) -> None:
    pass


def test_validation_detail_names_fields_never_the_input() -> None:
    # GIVEN errors as pydantic reports them, the input in each (a secret, a long key)
    long_key = "k" * 1000
    errors = [{"loc": ("body", "password"), "msg": "String should have at most 256 characters",
               "input": "hunter2-secret"}]
    errors += [{"loc": ("body", f"{long_key}{n}"), "msg": "Extra inputs are not permitted",
                "input": n} for n in range(50)]
    # WHEN they become a 422's detail
    detail = validation_detail(errors)
    # THEN fields and messages only, the first few, location parts cut
    assert detail.startswith("body.password: String should have at most 256 characters; ")
    assert "hunter2" not in detail
    assert detail.count("Extra inputs") == MAX_ERRORS - 1
    assert detail.endswith(f"and {51 - MAX_ERRORS} more errors")
    assert "k" * (MAX_LOC_CHARS + 1) not in detail and len(detail) < 1500


class Amount(StrictBody):
    amount_tinybar: int


def test_unknown_fields_are_one_error_however_many() -> None:
    # 5,000 unknown keys fit in 64 KiB; one error each took ~15 ms of the event loop to report
    with pytest.raises(ValidationError) as caught:
        Amount.model_validate({"amount_tinybar": 1, **{"k" * 100 + str(n): n for n in range(5000)}})
    [error] = caught.value.errors()
    assert error["type"] == "extra_forbidden" and error["msg"].endswith("and 4997 more")
    assert "k" * (MAX_LOC_CHARS + 1) not in error["msg"]
    with pytest.raises(ValidationError) as caught:
        Amount.model_validate({"amount_tinybar": 1, "extra": 2})
    assert caught.value.errors()[0]["msg"] == "unknown fields: 'extra'"
    assert Amount.model_validate({"amount_tinybar": 1}).amount_tinybar == 1


def test_forwarded_headers_are_believed_only_from_named_proxies() -> None:
    assert proxy_options("") == {"proxy_headers": False}
    assert proxy_options(" , ") == {"proxy_headers": False}
    assert proxy_options("10.0.0.1, 10.1.0.0/16") == {
        "proxy_headers": True, "forwarded_allow_ips": "10.0.0.1,10.1.0.0/16"}


def test_install_answers_fastapis_own_errors_in_the_shape() -> None:
    from tests.server.conftest import TestClient

    app = FastAPI()
    install(app, max_body_bytes=64 * 1024)

    @app.post("/echo")
    def echo(body: dict[str, int]) -> dict[str, int]:
        return body

    with TestClient(app) as client:
        missing = client.get("/nowhere")
        wrong_method = client.get("/echo")
        digits = client.post("/echo", content=b'{"a": ' + b"9" * 5000 + b"}",
                             headers={"content-type": "application/json"})
        nested = client.post("/echo", content=b"[" * 30_000 + b"]" * 30_000,
                             headers={"content-type": "application/json"})
        not_json = client.post("/echo", content=b"{", headers={"content-type": "application/json"})
        nan = client.post("/echo", content=b'{"a": NaN}',
                          headers={"content-type": "application/json"})
    assert (missing.status_code, missing.json()) == (
        404, {"code": "not_found", "detail": "Not Found"})
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "method_not_allowed"
    assert "POST" in wrong_method.headers["allow"]
    for response in (digits, nested, not_json, nan):
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_input"
        assert len(response.content) < 500  # not the body back
