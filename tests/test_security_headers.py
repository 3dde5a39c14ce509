"""Security headers on every response of the payments API; the policy itself."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from crowdlearning.config import Settings
from crowdlearning.ledger import make_engine
from crowdlearning.payments.api import create_app
from crowdlearning.security_headers import DOCS_POLICY, page_policy
from tests.ledger.factories import new_ledger

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

WEB_DIR = Path(__file__).resolve().parents[1] / "src" / "crowdlearning" / "web"


def assert_secured(headers: object, *, docs: bool = False) -> None:
    h = dict(headers)  # type: ignore[call-overload]
    csp = h["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert ("'unsafe-inline'" in csp) == docs
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    app = create_app(new_ledger(engine), settings=Settings(payments_api_max_body_bytes=1024))
    with TestClient(app) as client:
        yield client
    engine.dispose()


def test_every_payments_answer_carries_the_headers(api: TestClient) -> None:
    # WHEN answers of every kind: unauthorized, unknown route, too large, schema, docs
    answers = [api.get("/v1/balance"), api.get("/no-such-route"),
               api.post("/v1/payments", content=b"x" * 2000,
                        headers={"Content-Type": "application/json"}),
               api.get("/openapi.json")]
    docs = api.get("/docs")
    # THEN each carries them; only the docs page may run its inline bootstrap
    assert [r.status_code for r in answers] == [401, 404, 413, 200]
    for r in answers:
        assert_secured(r.headers)
    assert docs.status_code == 200 and docs.headers["content-security-policy"] == DOCS_POLICY
    assert_secured(docs.headers, docs=True)


def test_page_policy_allows_only_own_sockets() -> None:
    assert "connect-src 'self' ws://play.example:8000 wss://play.example:8000;" in page_policy(
        "play.example:8000")
    # a Host header that is not a plain host[:port] adds no source (nor a header injection)
    for bad in ("evil.example https://x", "a;b", "", None):
        assert "connect-src 'self';" in page_policy(bad)


def test_pages_need_no_inline_code() -> None:
    """The policy has no 'unsafe-inline': the pages may not have inline scripts, styles or
    handlers (they would silently stop working)."""
    pages = sorted(WEB_DIR.glob("*.html"))
    assert pages
    for page in pages:
        html = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), page.name
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html), page.name
    for script in WEB_DIR.glob("*.js"):
        js = script.read_text()
        inline = r"\beval\(|new Function\(|style=\\?\"|\son[a-z]+=\\?\""
        assert not re.search(inline, js), script.name
