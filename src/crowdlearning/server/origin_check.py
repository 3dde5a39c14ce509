"""Cross-site request forgery: which pages may send cookie-authenticated changes.

The session cookie (``cl_session``, SameSite=Strict) is sent by the browser whatever page made
the request, as long as the page is on the same *site* (any sibling subdomain counts); the
``Origin`` header says which page it was. ``OriginCheck`` (an ASGI middleware) refuses a
``POST``, ``PUT``, ``PATCH`` or ``DELETE`` that carries the session cookie and no bearer token
when its ``Origin`` (or, when the browser sent none, its ``Referer``) names another origin than
the server's own (the scheme the request came in with and its ``Host``) or one of
``server_allowed_origins``: 403 ``bad_origin``, before the body is read. ``Origin: null`` (a
sandboxed frame, a ``data:`` page) is another origin. Requests with neither header (curl, bots)
and requests authenticated with ``Authorization: Bearer`` (a page cannot make a browser add it)
pass: they cannot be forged by another site.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from crowdlearning.http_guard import error_response

__all__ = ["CHANGING_METHODS", "OriginCheck", "origin_of"]

CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_of(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of a URL or origin (default ports filled in; None if it has
    no scheme and host, like ``null``)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


class OriginCheck:
    """ASGI middleware: the module docstring's rule; ``cookie`` names the session cookie."""

    def __init__(self, app: ASGIApp, *, cookie: str, allowed_origins: str = "") -> None:
        self.app, self.cookie = app, cookie
        self.allowed: set[tuple[str, str, int]] = set()
        for entry in filter(None, (part.strip() for part in allowed_origins.split(","))):
            origin = origin_of(entry)
            if origin is None:
                raise ValueError(f"allowed origin {entry!r} is not scheme://host[:port]")
            self.allowed.add(origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in CHANGING_METHODS:
            refusal = self._refusal(scope)
            if refusal is not None:
                response = error_response(403, "bad_origin", refusal)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None when it may go on."""
        headers = _headers(scope["headers"])
        if headers.get("authorization", "").lower().startswith("bearer "):
            return None
        if self.cookie not in cookie_parser(headers.get("cookie", "")):
            return None
        claimed = headers.get("origin") or headers.get("referer")
        if claimed is None:
            return None
        origin = origin_of(claimed)
        own = origin_of(f"{scope.get('scheme', 'http')}://{headers.get('host', '')}")
        if origin is not None and (origin == own or origin in self.allowed):
            return None
        return ("this request came from a page of another site: changes signed in with the "
                "session cookie are accepted only from this site's own pages")


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers wanted here, by lower-case name (the first of each)."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key in ("authorization", "cookie", "origin", "referer", "host") and key not in out:
            out[key] = value.decode("latin-1")
    return out
