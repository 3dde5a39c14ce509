"""The FastAPI application: routers per resource, the game loop and background jobs, the pages.

``create_app(settings)`` opens the embedded runtime (``runtime.open_runtime``) when the app
starts and closes it when the app stops; tests may pass a ready ``runtime``. While the app runs,
three asyncio tasks live beside the requests: the game loop (``server_tick_hz``), settlement
(``server_settle_interval_s``) and round closing (``server_round_interval_s``).

The game loop shares the event loop with every request, so a request may not hold it: bodies are
limited to ``server_max_body_bytes`` before anything parses them and errors answer
``{"code", "detail"}`` without echoing the input (``http_guard``); password hashing runs on its
own bounded threads (``security.PasswordHashing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from crowdlearning import http_guard
from crowdlearning.config import Settings
from crowdlearning.races.forks import ForkConfig, TeamForks
from crowdlearning.races.service import RaceService
from crowdlearning.races.teams import TeamStore
from crowdlearning.security_headers import SecurityHeaders
from crowdlearning.server.deps import COOKIE
from crowdlearning.server.errors import install_error_handlers
from crowdlearning.server.origin_check import OriginCheck
from crowdlearning.server.referee import Referee
from crowdlearning.server.routes import (
    Pages,
    auth,
    consent,
    game,
    league,
    models,
    races,
    teams,
    wallet,
    watch,
)
from crowdlearning.server.runtime import Runtime, open_runtime
from crowdlearning.server.security import PasswordHashing
from crowdlearning.server.throttle import Throttle
from crowdlearning.server.watch_feed import WatchFeed

__all__ = ["WEB_DIR", "create_app"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """The app; it builds (and owns) the embedded runtime unless ``runtime`` is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            rt = runtime or stack.enter_context(open_runtime(settings))
            app.state.runtime, app.state.watchers = rt, 0
            app.state.referee = referee = Referee(rt, asyncio.get_running_loop())
            app.state.feed = feed = WatchFeed(
                rt.game, hz=settings.server_watch_hz, max_runs=settings.server_watch_max_runs,
                redis_url=settings.judge_url,
                server_id=f"{socket.gethostname()}:{settings.server_port}")
            gc.freeze()  # the startup heap (torch, numba, ...) is never collected: no long pauses
            tasks = [asyncio.create_task(rt.game.run_forever(settings.server_tick_hz)),
                     asyncio.create_task(referee.settle_forever()),
                     asyncio.create_task(referee.rounds_forever()),
                     asyncio.create_task(referee.deposits_forever()),
                     asyncio.create_task(feed.run_forever())]
            # the race league's scheduled races (races/service.py: its own task beside the game
            # loop, not inside its tick; why there)
            app.state.races = app.state.teams = None
            if settings.races_enabled:
                # teams and their forks (races/teams.py, races/forks.py): the forks are built
                # on a thread of their own at the lowest priority, never on the event loop
                app.state.teams = TeamStore(rt.ledger.engine, settings.races_team_max_members)
                forks = TeamForks(ForkConfig.from_settings(settings), rt.trainer.registry,
                                  rt.trainer.dataset.root, app.state.teams)
                tasks.append(asyncio.create_task(forks.run_forever()))
                app.state.races = RaceService(
                    settings, rt.trainer.registry, rt.store.engine,
                    submit=referee.on_finish,  # labellers' contributions (races/crowd.py)
                    mutes_engine=rt.ledger.engine,  # race chat mutes, shared (races/chat.py)
                    forks=forks,  # team forks race too (races/field.py)
                    decisions_of=lambda user_id, n: [r.decision
                                                     for r in rt.store.runs_of(user_id, n)])
                tasks.append(asyncio.create_task(app.state.races.run_forever()))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if app.state.races is not None:
                    # its child process (races/offload.py) ends before this server does: a
                    # stopped server leaves no process behind in its process group
                    await asyncio.to_thread(app.state.races.close)
                # no new run finishes now; the worker stops with the runtime (after this)
                stack.callback(referee.close)

    app = FastAPI(title="CrowdLearning", version="0.1.0", lifespan=lifespan,
                  description="Play, correct the self-driving policy, get paid in HBAR.")
    http_guard.install(app, max_body_bytes=settings.server_max_body_bytes)
    app.add_middleware(OriginCheck, cookie=COOKIE,
                       allowed_origins=settings.server_allowed_origins)
    app.add_middleware(SecurityHeaders)  # outermost: on every refusal as well
    install_error_handlers(app)
    app.state.passwords = PasswordHashing(settings.server_password_hash_workers,
                                          settings.server_password_hash_queue)
    app.state.auth_per_ip = Throttle(settings.server_auth_per_ip_per_min, 60.0)
    app.state.login_failures = Throttle(settings.server_login_failures, 900.0)
    app.state.link_attempts = Throttle(settings.server_link_attempts_per_hour, 3600.0)
    for module in (auth, game, wallet, consent, league, models, watch, races, teams):
        app.include_router(module.router)
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    # the pages at "/", never answering an /api/ path (a wrong method there is the API's 405)
    app.router.routes.append(Pages("/", app=StaticFiles(directory=WEB_DIR, html=True), name="web"))
    return app


def healthz(request: Request) -> dict:
    """For load balancers (``deploy/``): 200 once the app serves (its lifespan has started the
    game loop), with which server this is and how full it is."""
    state = request.app.state
    game = state.runtime.game
    return {"status": "ok", "server": state.feed.server_id, "players": game.players,
            "capacity": game.capacity}
