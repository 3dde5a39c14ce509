"""The verdict explains itself: on /ws/play, in GET /api/wallet/runs, and in an older database."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from crowdlearning.evaluation.explain import EXPLANATION_KEYS
from crowdlearning.server.store import RunRecord, Store
from tests.server.conftest import TestClient, signup
from tests.server.test_ws import receive_until

MONEY_KEYS = {"kind", "amount_tinybar", "why", "text"}


def test_the_verdict_message_and_the_run_history_carry_the_explanation(
        client: TestClient) -> None:
    # GIVEN a player who steers 0.3 left of the car for 1.5 s of a practice run
    signup(client)
    with client.websocket_connect("/ws/play") as ws:
        hello = ws.receive_json()
        ws.send_json({"type": "start", "mode": "label", "track_seed": hello["tracks"][0]})
        start = receive_until(ws, "start")
        ended = False
        while not ended:  # until tick 40, or the car leaves the track first
            msg = ws.receive_json()
            ended = msg["type"] == "end"
            if msg["type"] != "frame":
                continue
            lean = 0.3 if 10 <= msg["tick"] < 40 else 0.0
            ws.send_json({"type": "input", "tick": msg["tick"],
                          "steer": max(-1.0, min(1.0, msg["policy"][0] + lean))})
            if msg["tick"] >= 40:
                ws.send_json({"type": "stop"})
                receive_until(ws, "end")
                ended = True
        # WHEN the verdict arrives
        verdict = receive_until(ws, "verdict")
    # THEN it carries the documented explanation next to every field it had before
    e = verdict["explanation"]
    assert tuple(e) == EXPLANATION_KEYS
    assert {"decision", "effect_pct", "price_tinybar", "reward_tinybar", "penalty_tinybar",
            "audit_transaction_id", "note", "ticks"} <= set(verdict)
    assert e["decision"] == verdict["decision"]
    assert set(e["money"]) == MONEY_KEYS and e["money"]["amount_tinybar"] == 0
    assert e["money"]["why"] == "practice"  # a practice run moves no money, and says so
    assert e["decision_text"]
    if e["evaluated"]:  # driven on hidden tracks: figures, words and the chart's data
        assert e["runs"] > 0 and len(e["tracks"]) > 0 and " m " in e["comparison"]
        assert abs(e["mean_diff_m"] - (e["with_mean_m"] - e["without_mean_m"])) < 0.02
    # where the input differed most: while the player leaned 0.3 off the car, with positions
    assert 1 <= len(e["stretches"]) <= 3
    top = e["stretches"][0]
    assert top["peak_tick"] >= 10 and top["peak_gap"] >= 0.2
    for s in e["stretches"]:
        assert 0 <= s["first_tick"] <= s["peak_tick"] <= s["last_tick"] < verdict["ticks"]
        assert s["peak_gap"] >= 0.05 and len(s["points_m"]) >= 1
        assert all(len(p) == 2 for p in s["points_m"])
    # and the run history shows the same explanation
    runs = client.get("/api/wallet/runs").json()
    assert runs[0]["run_id"] == start["run_id"] and runs[0]["explanation"] == e


def test_an_older_runs_table_gets_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    # GIVEN a server database from before explanations (its runs table lacks the column)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(32) NOT "
                          "NULL UNIQUE, password_hash VARCHAR(200) NOT NULL, hedera_account "
                          "VARCHAR(40), hedera_public_key VARCHAR(200), created_at FLOAT NOT "
                          "NULL)"))
        c.execute(sa.text("CREATE TABLE runs (run_id VARCHAR(64) PRIMARY KEY, user_id INTEGER "
                          "NOT NULL, track_seed INTEGER NOT NULL, mode VARCHAR(16) NOT NULL, "
                          "paid BOOLEAN NOT NULL, ticks INTEGER NOT NULL, decision VARCHAR(16) "
                          "NOT NULL, effect_bp INTEGER NOT NULL, reward_tinybar BIGINT NOT NULL, "
                          "penalty_tinybar BIGINT NOT NULL, payout_id VARCHAR(128), audit_tx "
                          "VARCHAR(80), created_at FLOAT NOT NULL)"))
        c.execute(sa.text("INSERT INTO users VALUES (1, 'old', 'h', NULL, NULL, 1.0)"))
        c.execute(sa.text("INSERT INTO runs VALUES ('r-old', 1, 7, 'label', 0, 100, 'no_effect', "
                          "0, 0, 0, NULL, NULL, 1.0)"))
    engine.dispose()
    # WHEN this version opens it (twice: a second process finds the column there)
    store = Store(url)
    Store(url)
    # THEN old rows read with no explanation and new rows keep theirs
    assert store.run("r-old") == RunRecord("r-old", 1, 7, "label", False, 100, "no_effect", 0,
                                           0, 0, None, None, 1.0, None)
    store.add_run(RunRecord("r-new", 1, 7, "label", False, 100, "no_effect", 0, 0, 0, None,
                            None, 2.0, {"decision": "no_effect", "stretches": []}))
    assert store.runs_of(1, 10)[0].explanation == {"decision": "no_effect", "stretches": []}
