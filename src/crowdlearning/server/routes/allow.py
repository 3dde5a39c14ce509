"""A route class whose 405 names every method of its path in ``Allow``.

Starlette answers a method no route of a path takes with the ``Allow`` of the first route of
that path only (``GET`` for ``/api/teams``, though ``POST`` is there too; ``PUT`` for
``OPTIONS /api/wallet/apps/x``, though ``DELETE`` is there too). Routers whose paths carry
several methods use ``AllowEveryMethodRoute`` (``route_class=``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

__all__ = ["AllowEveryMethodRoute"]


class AllowEveryMethodRoute(APIRoute):
    """See the module docstring."""

    _methods: ClassVar[dict[str, set[str]]] = {}  # path format -> every method of its routes

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._methods.setdefault(self.path_format, set()).update(self.methods or ())

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = self._methods.get(self.path_format, set())
        if scope["method"] not in allowed:
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        await super().handle(scope, receive, send)
