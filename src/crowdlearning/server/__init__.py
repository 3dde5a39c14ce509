"""The web server: FastAPI routes per resource, the server-authoritative game loop, accounts.

    app.py          create_app(settings): routers, lifespan (game loop + background jobs), pages
    cli.py          serve_main: `crowdlearning serve`
    runtime.py      the embedded stack wired once (Hedera network, ledger, models, verdicts)
    game_loop.py    one RaceSim for every live run, one batched inference per tick
    play_socket.py  /ws/play: one player's state machine     messages.py  what clients send
    referee.py      finished run -> verdict -> settlement, pushed to the player
    store.py        users, tokens, challenges, runs (SQLite)  security.py  hashing, key proofs
    deps.py         Annotated dependencies                    errors.py    domain error -> status
    schemas.py      Create / Public bodies                    routes/      one router per resource

The judge behind the game (verdicts, settlement, rounds) is the ``judging`` package beside
this one. The protocol is in docs/protocol.md.
"""
