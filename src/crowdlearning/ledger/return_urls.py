"""Where a client's consent page may send a player back: URL prefixes and the match rule.

The operator registers prefixes per client (``crowdlearning payments return-url``); the consent
page returns only to a URL under one of them, so it can never be an open redirect. A prefix is
``https://host[:port][/path]`` (``http://`` only for ``localhost``, ``127.0.0.1`` and ``[::1]``,
for development), without user info, query or fragment. A URL is under a prefix when scheme,
host and port are the same (compared parsed, never as text: ``https://app.example`` does not
cover ``https://app.example.evil.com`` nor ``https://app.example@evil.com``) and its path is the
prefix's path or below it (``/cb`` covers ``/cb`` and ``/cb/done``, not ``/cbx``). URLs with
backslashes, control characters or spaces, ``.``/``..`` path segments or encoded dots and
slashes are refused before matching (browsers read them otherwise than a parser may).
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit

from crowdlearning.ledger.errors import InvalidInputError

__all__ = ["PREFIX_MAX", "URL_MAX", "ParsedUrl", "check_prefix", "is_under", "parse_return_url"]

PREFIX_MAX = 512  # a registered prefix [chars]
URL_MAX = 2048  # a return URL [chars]
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_BAD_ESCAPES = re.compile(r"%(2e|2f|5c|00)", re.IGNORECASE)
_RESERVED_PARAMS = frozenset({"consent", "state", "player"})  # what the consent page appends


class ParsedUrl(NamedTuple):
    scheme: str
    host: str
    port: int
    path: str
    query: str


def _parse(url: object, *, what: str, max_length: int) -> ParsedUrl:
    if not isinstance(url, str) or not url or len(url) > max_length:
        raise InvalidInputError(f"{what} must be a URL of 1..{max_length} characters")
    if _BAD_CHARS.search(url) or "#" in url:
        raise InvalidInputError(f"{what} may not hold spaces, control characters, backslashes "
                                "or a #fragment")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidInputError(f"{what} is not a valid URL") from e
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise InvalidInputError(f"{what} must be an absolute https:// URL")
    if scheme == "http" and host not in _LOOPBACK:
        raise InvalidInputError(f"{what} must use https:// (http:// only for localhost)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidInputError(f"{what} may not carry user info (user@host)")
    path = parts.path or "/"
    if not path.startswith("/") or any(seg in (".", "..") for seg in path.split("/")) \
            or _BAD_ESCAPES.search(path):
        raise InvalidInputError(f"{what} may not hold . or .. path segments, nor encoded dots "
                                "or slashes in its path")
    return ParsedUrl(scheme, host, port if port is not None else _DEFAULT_PORTS[scheme], path,
                     parts.query)


def check_prefix(prefix: object) -> str:
    """``prefix`` if it is a valid return URL prefix (module docstring), else
    ``InvalidInputError``."""
    parsed = _parse(prefix, what="return URL prefix", max_length=PREFIX_MAX)
    if parsed.query or str(prefix).endswith("?"):
        raise InvalidInputError("a return URL prefix may not hold a ?query")
    return str(prefix)


def parse_return_url(url: object) -> ParsedUrl:
    """``url`` parsed, if a consent page may append its answer to it (no ``consent``, ``state``
    or ``player`` parameter of its own), else ``InvalidInputError``."""
    parsed = _parse(url, what="return_to", max_length=URL_MAX)
    names = {name for name, _ in parse_qsl(parsed.query, keep_blank_values=True)}
    if names & _RESERVED_PARAMS:
        raise InvalidInputError("return_to may not hold the parameters consent, state or player: "
                                "the consent page appends them")
    return parsed


def is_under(url: ParsedUrl, prefix: str) -> bool:
    """Whether ``url`` is under the registered ``prefix`` (module docstring)."""
    try:
        base = _parse(prefix, what="return URL prefix", max_length=PREFIX_MAX)
    except InvalidInputError:
        return False
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        return False
    if base.path.endswith("/"):
        return url.path.startswith(base.path)
    return url.path == base.path or url.path.startswith(base.path + "/")
