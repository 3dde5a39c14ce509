"""Sign-up and sign-in limits: password guessing is slowed, players are not locked out."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from crowdlearning.server.app import create_app
from crowdlearning.server.runtime import Runtime
from crowdlearning.server.throttle import Throttle, TooManyRequestsError
from tests.server.conftest import TestClient, signup


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_window_slides_and_keys_are_apart() -> None:
    clock = Clock()
    throttle = Throttle(2, 10.0, clock=clock)
    throttle.hit("a")
    throttle.hit("a")
    assert throttle.wait_s("a") == pytest.approx(10.0) and throttle.wait_s("b") == 0
    clock.now = 4.0
    with pytest.raises(TooManyRequestsError, match="try again in 6 s"):
        throttle.check("a", "attempts")
    clock.now = 10.5  # the first event left the window
    assert throttle.wait_s("a") == 0
    throttle.reset("a")
    assert throttle.wait_s("a") == 0


def test_memory_is_bounded() -> None:
    throttle = Throttle(1, 60.0, max_keys=3)
    for key in range(10):
        throttle.hit(key)
    assert throttle.wait_s(0) == 0 and throttle.wait_s(9) > 0  # the oldest were forgotten


@pytest.fixture
def strict(runtime: Runtime) -> Iterator[TestClient]:
    settings = runtime.settings.model_copy(update={"server_auth_per_ip_per_min": 8,
                                                   "server_login_failures": 3,
                                                   "server_link_attempts_per_hour": 2})
    with TestClient(create_app(settings, runtime)) as c:
        yield c


def test_failed_sign_ins_are_limited_per_name_and_a_success_clears_them(
        strict: TestClient) -> None:
    signup(strict, "guarded")
    wrong = {"username": "guarded", "password": "not the password"}
    answers = [strict.post("/api/auth/login", json=wrong).status_code for _ in range(4)]
    blocked = strict.post("/api/auth/login", json={"username": "guarded",
                                                   "password": "correct horse"})
    assert answers == [401, 401, 401, 429]
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["code"] == "too_many_requests"


def test_attempts_from_one_address_are_limited(strict: TestClient) -> None:
    codes = [strict.post("/api/auth/login", json={"username": f"nobody{i}",
                                                  "password": "whatever pass"}).status_code
             for i in range(9)]
    assert codes[:8] == [401] * 8 and codes[8] == 429


def test_hedera_link_attempts_are_limited_per_player(strict: TestClient) -> None:
    # each attempt past the signature check costs the treasury a paid query on Hedera
    signup(strict, "linker")
    body = {"account_id": "0.0.999999", "public_key": "ab" * 32, "signature": "cd" * 64}
    codes = []
    for _ in range(3):
        strict.post("/api/auth/hedera/challenge")
        codes.append(strict.post("/api/auth/hedera/link", json=body).status_code)
    assert codes == [400, 400, 429]
