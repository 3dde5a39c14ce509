"""Security headers on every HTTP response of both apps (the game server, the payments API).

``SecurityHeaders`` is an ASGI middleware that adds, to every ``http`` response (errors, static
pages and the 413 of ``http_guard.BodyLimit`` alike):

- ``Content-Security-Policy``: only this origin's own files run and load. The pages under
  ``web/`` are plain HTML with their scripts and styles in files (no inline ``<script>``, no
  ``style=`` attribute, no ``eval``), so no ``'unsafe-inline'`` is needed; ``connect-src`` is
  ``'self'`` plus ``ws://`` and ``wss://`` of the request's own host (``/ws/play``,
  ``/ws/watch``); ``frame-ancestors 'none'`` (no page of ours inside another site's frame).
  FastAPI's documentation pages (``/docs``, ``/redoc``) load Swagger UI / ReDoc from
  cdn.jsdelivr.net with an inline bootstrap script: those paths alone get ``DOCS_POLICY``.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, and
  ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``.

Headers the app set itself are kept (an app may tighten its own answer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DOCS_PATHS", "DOCS_POLICY", "PAGE_POLICY", "SecurityHeaders", "page_policy"]

PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'{ws}; object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
               "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
               "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
               "font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_FIXED = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
          (b"x-frame-options", b"DENY"))


def page_policy(host: str | None) -> str:
    """The pages' policy for a request to ``host`` (its ``Host`` header; the WebSocket sources
    are left out when it is missing or not a plain host[:port])."""
    ws = f" ws://{host} wss://{host}" if host and _HOST.match(host) else ""
    return PAGE_POLICY.format(ws=ws)


class SecurityHeaders:
    """ASGI middleware: the module docstring's headers on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path", "") in DOCS_PATHS:
            policy = DOCS_POLICY
        else:
            policy = page_policy(_header(scope["headers"], b"host"))
        added = ((b"content-security-policy", policy.encode("latin-1")), *_FIXED)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in added if name not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
