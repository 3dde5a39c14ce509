"""One router per resource: auth, game, wallet, league, models, watch (HTTP and WebSocket); and
``Pages``, the mount of the web pages at ``/`` that leaves ``/api/`` paths to the routers."""

from __future__ import annotations

from starlette.routing import Match, Mount
from starlette.types import Scope

__all__ = ["API_PREFIX", "Pages"]

API_PREFIX = "/api/"


class Pages(Mount):
    """A mount (at ``/``: ``Pages("/", app=StaticFiles(...), name="web")``) that never takes an
    ``/api/`` path. A mount at ``/`` matches every path and method, so before this a method an
    API path does not take (``GET /api/wallet/stake``) reached the pages: 404, or 405 saying
    ``Allow: GET, HEAD``. Now the router answers 405 with the route's own ``Allow``."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("path", "").startswith(API_PREFIX):
            return Match.NONE, {}
        return super().matches(scope)
