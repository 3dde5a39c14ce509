"""Judging behind the game: verdicts, settlement and rounds, in this process, a child one, or
one shared judge for several game servers.

    errors.py   JudgeUnavailableError, RemoteJudgeError: what a game server is told
    local.py    LocalJudge (the verdict service, ledger and run store called directly),
                verdict_message (what a player is sent), run records
    process.py  JudgeProcess: a LocalJudge in a child process at idle CPU priority
    remote.py   RemoteJudge / JudgeServer: one judge for many game servers over Redis;
                judge_main serves ``crowdlearning judge``
    stack.py    a judge's own service stack from Settings (local_judge, verdict_service,
                open_trainer, audit_journal, start_audit_publisher)
    tracks.py   TrackCatalog (the screen's play tracks by digest; the tracks themselves:
                ``evaluation.curriculum.play_tracks``)

The game server (``server.runtime``) imports this package; nothing here imports
``server.runtime`` or ``server.app``. It still depends on two lower-level server modules:
``server.game_loop.RunSpec`` (what a finished run was: who, which track, which mode, paid or
not) and ``server.store`` (``Store``, ``RunRecord``: each verdict is recorded with its run, and
the player's linked Hedera account is read there). Both should move below server and judging
later (a run's description and the runs table are shared data, not the web server's).
"""
