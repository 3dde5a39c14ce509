"""The one typed settings object: every knob of the platform, read from ``CROWDLEARNING_*``.

Secrets are ``SecretStr`` and never logged; outside development, defaults that are only safe on a
developer's machine are refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Platform configuration; each field is ``CROWDLEARNING_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="CROWDLEARNING_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Field(default=Path("var"), description="Where models, datasets, DBs live.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- simulator -------------------------------------------------------------------------
    sim_max_episode_steps: int = Field(default=2400, gt=0, description="Truncation [ticks].")

    # --- learning and verdicts (see docs/learning.md, docs/verdict.md) ---------------------
    reaction_delay_ticks: int = Field(
        default=0, ge=0, le=40,
        description="Reaction delay corrected in labels when a run has no estimate [ticks].")
    reaction_delay_keyboard_ticks: int = Field(
        default=4, ge=0, le=40,
        description="Reaction delay of a keyboard run too short to estimate its own [ticks].")
    reaction_delay_estimate: bool = Field(
        default=True, description="Estimate each run's reaction delay from the run itself.")
    reaction_delay_max_ticks: int = Field(
        default=15, ge=0, le=40, description="Largest reaction delay estimated [ticks].")
    intervention_weight: float = Field(
        default=3.0, gt=0, le=100, description="Weight of takeover (HG-DAgger) labels.")
    verdict_confidence: float = Field(
        default=0.95, gt=0.5, lt=1.0, description="Confidence of improved decisions (rewards).")
    verdict_penalty_confidence: float = Field(
        default=0.99, gt=0.5, lt=1.0,
        description="Confidence of worse decisions (penalties weigh 3x, so a stricter bar).")
    verdict_margin_pct: float = Field(
        default=0.5, ge=0, le=50, description="Effect an improvement must clear [% distance].")
    verdict_suite_size: int = Field(default=24, ge=2, le=500, description="Hidden tracks.")
    verdict_starts_per_track: int = Field(default=4, ge=1, le=32, description="Runs per track.")
    verdict_window_ticks: int = Field(default=400, ge=20, le=6000, description="Run [ticks].")
    verdict_tracks_per_look: int = Field(
        default=12, ge=1, le=500, description="Tracks evaluated between early-stop looks.")
    verdict_finetune_updates: int = Field(
        default=300, ge=1, le=100_000, description="Gradient steps of each paired fine-tune.")
    verdict_finetune_seeds: int = Field(
        default=2, ge=1, le=16, description="Paired fine-tunes per verdict, averaged [count].")
    verdict_null_runs: int = Field(
        default=16, ge=3, le=1000,
        description="Placebo contributions measured per champion: the training-noise null.")
    verdict_null_noise: float = Field(
        default=0.03, gt=0, le=1.0,
        description="Noise of the placebo labels [action units]. With the suite measuring where "
        "the champion fails (verdict_focus_starts > 0) use 0.15: it moves the model about as "
        "much as a real player's corrections do (docs/verdict.md, \"Measuring where the "
        "champion fails\").")
    verdict_null_ticks: int = Field(
        default=1200, ge=20, le=36_000,
        description="Length of each placebo run of the verdict's null [ticks]: the length of "
        "the runs judged (the game's server_run_ticks, 1200; the demo market's sessions are "
        "600, measured in docs/verdict.md \"A baseline at the code as it stands\").")
    # curriculum (docs/verdict.md "Curriculum"): track families unlock one by one, easiest first
    curriculum_mastery: float = Field(
        default=0.95, gt=0, le=1.0,
        description="Share of laps a new champion must complete on the frontier family's hidden "
        "mastery suite for the next family to unlock.")
    curriculum_frontier_tracks: int = Field(
        default=8, ge=0, le=200,
        description="Hidden tracks of the frontier family the mastery is measured on (2 starts "
        "each); 0 turns the curriculum off (only 'easy' stays unlocked) [count].")
    curriculum_mastery_ticks: int = Field(
        default=6000, ge=20, le=72_000,
        description="Time the champion has to finish a lap of the mastery suite: mastery is "
        "about staying on the track, pace is the promotion's test [ticks].")
    curriculum_cascade: bool = Field(
        default=True,
        description="After a family unlocks, measure the champion on it too, unlocking the next "
        "while it masters them (false: one family per promotion).")
    curriculum_stall_rounds: int = Field(
        default=1, ge=0, le=1000,
        description="Rounds in a row the same champion may close without being replaced "
        "before the next family unlocks anyway, if it drives at least curriculum_stall_floor "
        "of its frontier's mastery laps: the crowd no longer moves it there (0: only mastery "
        "unlocks; 1, since 2026-11-30: more rounds paid, docs/verdict.md) [count].")
    curriculum_stall_floor: float = Field(
        default=0.8, ge=0, le=1.0,
        description="Share of the frontier's mastery laps a stalled champion must drive for "
        "the next family to unlock (below it the crowd still has failures to fix there).")
    promotion_pace_calibration: bool = Field(
        default=True,
        description="A candidate as safe as the champion but slower has its throttle tuned to "
        "the champion's pace on a hidden calibration suite, where that keeps it as safe, before "
        "the promotion judges it (evaluation/pace.py).")
    merge_anchor_share: float = Field(
        default=1.0, ge=0, le=10.0,
        description="A merge also trains on the champion's own driving on the mastered "
        "families' play tracks, this many rows per aggregated row (learning/anchors.py): what "
        "the crowd teaches where the model fails does not slow it where it drives well (0: "
        "off).")
    promotion_exit_confidence: float = Field(
        default=0.0, ge=0, lt=1.0,
        description="A candidate that finishes more laps than the champion but leaves the track "
        "more often is refused only when the suite shows with this confidence that it leaves "
        "more often (exact one-sided sign test on the runs where one of the two left); 0: any "
        "extra exit refuses (evaluation/promotion.py).")
    promotion_pace_tolerance: float = Field(
        default=0.02, ge=0, le=0.5,
        description="A candidate counts as not slower when its mean lap time on the laps both "
        "it and the champion finish is at most this share above the champion's (0: strictly "
        "not slower).")
    # where the verdict measures (docs/verdict.md "Measuring where the champion fails")
    # Off by default until validated on the market study of issues 10 and 16 (docs/verdict.md):
    # the demo's 10-round market turns them on (frontier 0.75, focus 0.75, null noise 0.15 that
    # follows the suite) and reaches 4-8 promotions, but with 1 false penalty in 140 honest runs.
    verdict_frontier_share: float = Field(
        default=0.0, ge=0, lt=1.0,
        description="Share of the verdict suite's tracks drawn from the frontier family (the "
        "hardest unlocked one); 0 splits the suite evenly over the unlocked families.")
    verdict_focus_starts: float = Field(
        default=0.0, ge=0, le=1.0,
        description="Share of each verdict track's starts that replay the champion's approach "
        "to a failure there (its own survey of the suite); 0: equally spaced starts.")
    verdict_focus_lead_ticks: int = Field(
        default=60, ge=0, le=600,
        description="A focused verdict run starts where the champion was this long before it "
        "failed, at its speed and pose [ticks].")
    verdict_focus_lead_step_ticks: int = Field(
        default=0, ge=0, le=600,
        description="A verdict track's further focused runs into the same failure start this "
        "much earlier each (60, 80, 100 ticks before it with 20), so no two runs are the same "
        "(0: the failures are cycled, and a track that failed once replays one run) [ticks].")
    verdict_focus_pool: int = Field(
        default=3, ge=1, le=20,
        description="Frontier-family hidden tracks the champion is surveyed on per frontier "
        "track of the verdict suite; the suite keeps those it fails on most (1: no pool).")
    verdict_null_follows_suite: bool = Field(
        default=False,
        description="Placebos (the verdict's null) drive play tracks of the suite's families "
        "in its proportions from random starts; false: easy tracks from the start line.")
    verdict_null_full_runs: bool = Field(
        default=False,
        description="A placebo's champion that leaves the track is put back on the centreline "
        "and drives on, so placebos are as long as runs even at a champion that fails fast "
        "(false: a placebo ends at the champion's first exit; docs/verdict.md).")
    verdict_pooled: bool = Field(
        default=True,
        description="At a round's close, the round's runs judged 'no effect' that pointed the "
        "right way are judged together as one pool, against placebos pooled alike; a pool "
        "judged improved is merged and paid, shared by each member's own effect "
        "(evaluation/pooled.py).")
    verdict_pooled_min_members: int = Field(
        default=2, ge=2, description="Fewest runs a round's pool is judged with.")
    # pricing (docs/verdict.md "Pricing"): harm costs 3x what the same gain earns, and the hold
    # (the largest penalty) is 3x the largest reward, so mixing sabotage into honest play loses
    price_reward_tinybar_per_bp: int = Field(
        default=20_000, ge=0, description="Reward per basis point of improvement [tinybar].")
    price_reward_cap_tinybar: int = Field(
        default=20_000_000, ge=0, description="Largest reward of one run [tinybar].")
    price_penalty_tinybar_per_bp: int = Field(
        default=60_000, ge=0, description="Penalty per basis point of harm [tinybar].")
    price_penalty_cap_tinybar: int = Field(
        default=60_000_000, ge=0, description="Largest penalty of one run; at most the hold "
        "(ledger_hold_tinybar) [tinybar].")
    price_penalty_basis: Literal["effect", "confident"] = Field(
        default="confident",
        description="What a penalty charges: 'confident', the harm beyond the training noise "
        "(beyond both the paired interval's upper end and the placebos' null: an honest run "
        "judged worse at the edge of the noise pays little, a sabotage far beyond it about its "
        "whole harm); 'effect', the whole measured harm (docs/verdict.md, 'Price').")
    price_label_noise_ref: float = Field(
        default=0.1, ge=0.0, le=2.0,
        description="A reward is multiplied by its labels' precision ref^2 / (ref^2 + s^2), s "
        "the run's steering jitter (learning/label_noise.py): ref is the jitter at which a "
        "label is paid half, about the initial model's own steering error on exact labels "
        "(0.12 in label mode, 0.18 where players take over; docs/verdict.md, 'Label "
        "precision'). Penalties are never scaled. The rows of a merged contribution weigh the "
        "same factor in the aggregated dataset (learning/dagger.py). 0 = off.")
    judge_backend: Literal["inline", "ray"] = Field(
        default="inline",
        description="Where verdicts are computed: inline (this process) or ray (a Ray cluster).",
    )
    judge_workers: int = Field(
        default=2, ge=1, le=4096, description="Ray judge actors (one CPU each) [count].")
    ray_address: str = Field(
        default="", description="Ray cluster to join ('auto': the local `ray start`); "
        "empty = start a private one on this machine.")
    screen_max_per_hour: int = Field(
        default=30, ge=1, le=100_000, description="Submissions per player per hour.")
    screen_near_duplicate_overlap: float = Field(
        default=0.9, gt=0, le=1.0, description="Overlap with accepted data that is refused.")

    # --- ledger and payments API -----------------------------------------------------------
    database_url: str = Field(
        default="sqlite:///var/crowdlearning.db",
        description="Ledger database: a SQLite file by default, postgresql+psycopg://... by URL.",
    )
    ledger_stake_minimum_tinybar: int = Field(
        default=100_000_000, gt=0, description="Locked stake needed for paid mode [tinybar]."
    )
    ledger_hold_tinybar: int = Field(
        default=60_000_000, gt=0,
        description="Stake held for each paid run from its start until its verdict is booked: "
        "covers the largest penalty (price_penalty_cap_tinybar) [tinybar].")
    ledger_transaction_attempts: int = Field(
        default=8, gt=0, le=100, description="Retries of a conflicting DB transaction [count]."
    )
    settlement_max_payouts_per_run: int = Field(
        default=1000, gt=0, description="Bound on payouts batched by one settlement run [count]."
    )
    settlement_max_attempts: int = Field(
        default=5, gt=0, description="Hedera transactions tried per payout before voiding it."
    )
    settlement_expiry_margin_s: int = Field(
        default=10, ge=0, description="Clock-skew margin before a window counts as expired [s]."
    )
    settlement_receipt_ttl_s: int = Field(
        default=180, ge=0, description="How long the network keeps receipts; 0 = forever [s]."
    )
    settlement_fault_step: Literal["", "sign", "store", "send", "submit", "receipt", "post"] = (
        Field(default="", description="CROWDLEARNING_SETTLEMENT_FAULT_STEP, tests only (refused "
              "in production): settlement kills its own process with SIGKILL at this step "
              "(payments.settlement.FAULT_STEPS) to prove a crash there loses and duplicates "
              "nothing; empty = never."))
    payments_api_history_limit: int = Field(
        default=100, gt=0, le=1000, description="Most transfers one history page returns [count]."
    )
    payments_api_max_body_bytes: int = Field(
        default=16 * 1024, ge=1024, le=16 * 1024 * 1024,
        description="Largest request body, refused with 413 before it is parsed [bytes].")
    payments_api_trusted_proxies: str = Field(
        default="", description="Reverse proxies whose X-Forwarded-For is believed: comma-"
        "separated addresses or networks; empty = none (the client is the socket's peer).")
    payments_database_url: str = Field(
        default="", description="The payments API's own database (`crowdlearning payments "
        "serve`): a SQLAlchemy URL; empty = database_url (the platform's ledger).")
    payments_client_rps: float = Field(
        default=50.0, gt=0, le=100_000,
        description="Requests per second each API client may make, on average (token bucket, "
        "per process); beyond, 429 rate_limited [1/s].")
    payments_client_burst: int = Field(
        default=100, ge=1, le=1_000_000,
        description="Requests a client may make at once before payments_client_rps applies "
        "(the bucket's size) [count].")
    payments_client_daily_payout_tinybar: int = Field(
        default=10_000 * 100_000_000, ge=0,
        description="Most a client may book in payouts and withdrawals in any 24 h (rolling "
        "window; failed ones do not count); beyond, 429 quota_exceeded; 0 = no quota [tinybar].")
    payments_metrics_token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token GET /metrics requires; empty = no "
        "token, but only clients on loopback (127.0.0.1, ::1) may read it.")
    # payments service: webhooks
    payments_webhook_interval_s: float = Field(
        default=2.0, ge=0, le=3600,
        description="How often `crowdlearning payments serve` records webhook events from the "
        "books and delivers the due ones (also at once after a settlement run posts or voids "
        "payouts); 0 = it delivers none [s].")
    payments_webhook_concurrency: int = Field(
        default=4, ge=1, le=64, description="Webhook deliveries in flight at once [count].")
    payments_webhook_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of one webhook delivery POST [s].")
    payments_webhook_base_backoff_s: float = Field(
        default=10.0, gt=0, le=86_400,
        description="Wait after a failed delivery, doubled after each further failure [s].")
    payments_webhook_max_backoff_s: float = Field(
        default=3600.0, gt=0, le=7 * 86_400, description="Longest wait between deliveries [s].")
    payments_webhook_max_attempts: int = Field(
        default=12, ge=1, le=100,
        description="Delivery attempts of an event before it is marked failed (a client can "
        "replay it) [count].")
    payments_webhook_watermark_lag_s: float = Field(
        default=120.0, ge=1, le=86_400,
        description="How far behind its watermarks each webhook pass looks again for settled or "
        "failed payouts and client deposits (stamped by their writer's clock inside a database "
        "transaction, so one committed late, or written by a process whose clock lags, can be "
        "older than the newest fact already seen). Must exceed the longest commit delay plus "
        "the clock skew between the processes that settle and credit (the service, game "
        "servers); a fact older than this when its transaction commits never gets its event. "
        "Larger costs each pass the facts of this window again (skipped: they are evented "
        "once) [s].")
    payments_settle_interval_s: float = Field(
        default=2.0, ge=0, le=3600,
        description="How often `crowdlearning payments serve` settles pending payouts on Hedera "
        "itself (the platform's Settler, with the hedera_operator as treasury); 0 = it does not "
        "(the game server or scripts/settle-once.py settles) [s].")
    payments_deposit_poll_s: float = Field(
        default=2.0, ge=0, le=3600,
        description="How often `crowdlearning payments serve` reads the treasury's history on "
        "the mirror node (hedera_mirror_url, else the network's): client and player deposits "
        "credited, network fees booked; its position is the ledger's, one per treasury, shared "
        "with game servers on the same ledger; the first of them to start opens the books with "
        "the treasury's balance; 0 = it reads none (a game server on the same ledger does) [s].")

    # --- races (races/, the autonomous race league) ----------------------------------------
    races_enabled: bool = Field(
        default=True, description="Run the scheduled autonomous races in this game server.")
    races_interval_s: float = Field(
        default=300.0, ge=5, le=86_400, description="A race starts every this many seconds "
        "(aligned to the epoch, UTC) [s].")
    races_seed: int = Field(
        default=0, ge=0, description="Mixed into every race's seed (track, grid) [int].")
    races_laps: int = Field(default=2, ge=1, le=50, description="Laps of every race [count].")
    races_max_cars: int = Field(
        default=8, ge=1, le=8, description="Cars in a race: the champion and the most recent "
        "other model versions [count].")
    races_grid_gap_m: float = Field(
        default=10.0, gt=0, le=50, description="Distance between grid slots [m].")
    races_start_speed_mps: float = Field(
        default=8.0, ge=0, le=30, description="Rolling start speed of every car [m/s].")
    races_resets: int = Field(
        default=2, ge=0, le=20, description="Times a car that leaves the track is put back on "
        "it before it is out (DNF, left_track) [count].")
    races_max_lap_s: float = Field(
        default=150.0, gt=0, le=3600, description="Time allowed per lap: a car still racing "
        "after laps x this is out (DNF, time_up) [s].")
    races_track: str = Field(
        default="", description="Race on this named track (sim.track_gen.NAMED_TRACKS) instead "
        "of drawing one per race from the unlocked families (demos, tests).")
    races_speed: int = Field(
        default=1, ge=1, le=100, description="Simulated ticks per wall tick: 1 = real time "
        "(tests and demos run faster) [x].")
    races_frame_hz: float = Field(
        default=10.0, ge=1, le=20, description="Spectator frames per second of a race [Hz].")
    races_max_spectators: int = Field(
        default=5000, gt=0, description="Spectator sockets per race [count].")
    races_timetable: int = Field(
        default=6, ge=1, le=100, description="Upcoming races listed in the timetable [count].")
    races_reactions_per_min: int = Field(
        default=20, ge=0, le=600, description="Reactions one signed-in user may send to a race "
        "per minute (0: reactions off) [count].")
    # race chat (races/chat.py): signed-in spectators write, everyone reads
    races_chat_per_min: int = Field(
        default=10, ge=0, le=600, description="Chat messages one signed-in user may send to "
        "races per minute (per game server; 0: chat off) [count].")
    races_chat_max_chars: int = Field(
        default=200, ge=1, le=1000, description="Longest chat message, in characters after "
        "trimming the spaces around it [count].")
    races_chat_history: int = Field(
        default=50, ge=0, le=1000, description="Recent chat messages kept per race in memory "
        "and sent to a spectator who joins [count].")
    races_chat_lines_per_frame: int = Field(
        default=10, ge=1, le=500, description="Most new chat messages one frame carries; more "
        "wait for the next frames (at most races_chat_history waiting, oldest dropped) "
        "[count].")
    races_chat_blocked_words: str = Field(
        default="fuck,fucking,shit,cunt,asshole", description="Words a chat message may not "
        "contain (comma-separated; case-insensitive, whole words): such a message is refused, "
        "blocked_word.")
    races_moderators: str = Field(
        default="", description="User ids (comma-separated) of the race chat's moderators: "
        "they may delete any message and mute its writer.")
    races_chat_max_mute_s: int = Field(
        default=7 * 86_400, ge=60, le=365 * 86_400, description="Longest mute a moderator may "
        "give [s].")
    races_crowd_car: bool = Field(
        default=True, description="One car of every race (a copy of the champion) is driven "
        "by the crowd's aggregate input (races/crowd.py) [bool].")
    races_max_labellers: int = Field(
        default=200, ge=0, le=10_000, description="Signed-in spectators who may steer cars of "
        "one race at once (0: nobody) [count].")
    races_weight_runs: int = Field(
        default=20, ge=1, le=1000, description="A labeller's weight in the crowd car's median "
        "is from their latest this many verdicts [count].")
    # teams and team forks (races/teams.py, races/forks.py)
    races_team_max_members: int = Field(
        default=8, ge=1, le=1000, description="Most members of one race league team [count].")
    races_fork_slots: int = Field(
        default=2, ge=0, le=7, description="Places of a race given to team forks (models "
        "trained only on one team's accepted data), best placed then most recent; 0: forks "
        "never race [count].")
    races_fork_min_contributions: int = Field(
        default=5, ge=1, le=100_000, description="Accepted, merged contributions a team's "
        "members need before the team's first fork is built [count].")
    races_fork_interval_s: float = Field(
        default=3600.0, ge=1, le=30 * 86_400, description="A team's fork is rebuilt (when it "
        "has new accepted contributions) at most once per this long, across game servers [s].")
    races_fork_check_s: float = Field(
        default=60.0, gt=0, le=86_400, description="How often the fork builder looks for teams "
        "with new accepted contributions [s].")
    races_fork_updates: int = Field(
        default=500, ge=0, le=100_000, description="Gradient steps of a fork's fine-tune from "
        "the champion's base (tests: a few) [count].")
    races_offload: Literal["process", "thread"] = Field(
        default="process", description="Where races' slow pure computation runs (a race's "
        "track and models prepared, replays, team forks' fine-tunes): in a child process, off "
        "the game loop's GIL (races/offload.py), or on a worker thread of the game server "
        "(the old path; also the fallback when no child can start).")

    # --- hedera ----------------------------------------------------------------------------
    hedera_network: Literal["local", "testnet", "mainnet"] = Field(
        default="local", description="local = the embedded local network (development only)."
    )
    hedera_local_host: str = Field(default="127.0.0.1", description="Local network gRPC host.")
    hedera_local_port: int = Field(
        default=50211, ge=0, le=65535, description="Local network gRPC port (0 = ephemeral)."
    )
    hedera_local_state_file: Path | None = Field(
        default=None, description="Where the local network keeps its state (None = in memory)."
    )
    hedera_local_mirror_port: int = Field(
        default=5551, ge=0, le=65535,
        description="Embedded local network's mirror REST port, for deposits (0 = ephemeral).",
    )
    hedera_mirror_url: str = Field(
        default="", description="Mirror node REST base (.../api/v1); empty = the network's own."
    )
    hedera_operator_id: str = Field(
        default="", description="Operator (treasury) account, shard.realm.num; from the env."
    )
    hedera_operator_key: SecretStr = Field(
        default=SecretStr(""), description="Operator key: DER hex, or ed25519:/ecdsa:<raw hex>."
    )
    hedera_audit_topic_id: str = Field(
        default="", description="HCS audit topic; empty = the deployment's own, created once "
        "and kept in the ledger database (docs/audit.md)."
    )
    hedera_max_transfers_per_tx: int = Field(
        default=10, ge=2, le=10, description="Hbar balance adjustments per CryptoTransfer [count]."
    )
    hedera_valid_duration_s: int = Field(
        default=120, ge=15, le=180, description="Transaction valid-duration window [s]."
    )
    hedera_request_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Bound on one SDK call, retries included [s]."
    )
    hedera_connect_timeout_s: float = Field(
        default=5.0, gt=0, le=120,
        description="CROWDLEARNING_HEDERA_CONNECT_TIMEOUT_S: how long a submission waits for a "
        "connection to a node; none within it = nothing is sent (HederaNotSentError) [s].")
    hedera_node_min_backoff_s: float = Field(
        default=8.0, gt=0, le=3600,
        description="CROWDLEARNING_HEDERA_NODE_MIN_BACKOFF_S: the SDK's per-node backoff after a "
        "failed gRPC call, first step (doubles per failure; reset by the transport after each "
        "network failure, so it never outlasts an outage) [s].")
    hedera_node_max_backoff_s: float = Field(
        default=3600.0, gt=0, le=86_400,
        description="CROWDLEARNING_HEDERA_NODE_MAX_BACKOFF_S: the SDK's per-node backoff cap [s].")

    # --- audit trail (audit/, docs/audit.md) -----------------------------------------------
    audit_block_max_entries: int = Field(
        default=256, ge=1, le=10_000,
        description="Most entries (verdicts, settled transactions) sealed into one audit block, "
        "published as one HCS message [count].")
    audit_block_interval_s: float = Field(
        default=5.0, gt=0, le=3600,
        description="A partial block is sealed once its oldest entry has waited this long [s].")
    audit_scan_limit: int = Field(
        default=1000, ge=1, le=100_000,
        description="Settled transactions read per page when journaling them [count].")
    audit_retry_max_s: float = Field(
        default=60.0, gt=0, le=3600,
        description="Longest pause between audit publishing retries (doubling backoff) [s].")

    # --- server ----------------------------------------------------------------------------
    server_host: str = Field(default="127.0.0.1", description="Where `crowdlearning serve` binds.")
    server_port: int = Field(default=8000, ge=0, le=65535, description="HTTP port (0 = ephemeral).")
    server_database_url: str = Field(
        default="sqlite:///var/server.db", description="Users, sessions, runs (the web server's)."
    )
    server_tick_hz: float = Field(default=20.0, gt=0, le=100, description="Game loop rate [Hz].")
    server_max_players: int = Field(
        default=512, gt=0, le=10_000, description="Simultaneous runs (simulator slots) [count]."
    )
    server_run_ticks: int = Field(
        default=1200, ge=20, le=36_000, description="Longest run [ticks] (1200 = 60 s)."
    )
    server_random_starts: bool = Field(
        default=True, description="Start each run where a secret per-run seed says (place, "
        "speed, offset), so no run can be re-created before it is played; off: every run "
        "starts on the start line at 8 m/s (tests that script a run).")
    server_disturbance_low: float = Field(
        default=0.15, ge=0.0, le=1.0, description="Weakest disturbance a run can get: standard "
        "deviation of the independent noise added to the executed steering every tick, drawn "
        "per run from its secret seed (learning/disturbance.py; 0 = none).")
    server_disturbance_high: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Strongest disturbance a run can get (see "
        "server_disturbance_low; at least that). Measured (docs/verdict.md): at 0.2 the "
        "scripted expert leaves the track in 1 of 128 one-minute runs, at 0.25 in 12, at 0.3 "
        "in 22 of 64: keep it at most 0.2 so that a good driver always can recover.")
    server_label_beta: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Label mode: the car executes beta x the "
        "player's input + (1 - beta) x the policy's own action (DAgger's mixture: the states "
        "are the learner's, the labels the player's). Measured (docs/verdict.md, 'Whose states'"
        "): at 1 (the player drives) players whose own lag and noise push the car around earn "
        "more than exact labels; at 0.5 exact labels earn most and every honest player more.")
    judge_threads: int = Field(
        default=1, ge=1, le=64, description="Torch threads of the judging process (the judge "
        "child, crowdlearning judge). 1 where it shares the cores with a game server; a judge on "
        "a machine of its own may use its cores: on 2 cores the fine-tune runs 1.7x faster "
        "(a verdict 1.3x), with the same weights (docs/benchmarks.md, 'Verdict latency').")
    server_ws_fast_paths: bool = Field(
        default=True, description="Game frames written straight to uvicorn's transport and "
        "valid inputs applied as they arrive (server/play_socket.py: direct_writer, "
        "InlineInputs): from 500 to 750 players per 2-core node at p99 <= 75 ms "
        "(docs/benchmarks.md). They read uvicorn's private protocol object and fall back to the "
        "normal path when it is not there; false = always the normal path.")
    server_stall_seconds: float = Field(
        default=3.0, ge=0.0, le=600.0, description="A run whose car has not advanced 1 m "
        "along the track for this long ends ('stalled'); 0 = never [s].")
    server_play_tracks: int = Field(
        default=8, gt=0, le=256, description="Play tracks served: play seeds 0..N-1 [count]."
    )
    server_frontier_play_tracks: int = Field(
        default=32, ge=0, le=256,
        description="Play tracks served of the frontier family (the hardest unlocked), if more "
        "than server_play_tracks: the mission board surveys 16 of them and looks further, 8 at "
        "a time, while the champion fails fewer segments than it offers missions [count].")
    server_missions: int = Field(
        default=6, ge=0, le=64, description="Missions the Play page offers: runs started just "
        "before the segments where the champion is unsure or failed (server/missions.py; "
        "0 = none) [count].")
    server_missions_approach: bool = Field(
        default=False, description="A mission aimed at a segment the champion failed starts "
        "where the champion was server_missions_approach_s before failing there, at its "
        "speed, offset and heading (learning.routing.meet_failures); false: 3 s before the "
        "segment at the start speed on the centreline, where the champion mostly drives "
        "through. Off by default: measured in the 10-round market it paid the runs it placed "
        "2-3x as often but not the market as a whole (docs/verdict.md, \"Missions that meet "
        "the failure\"). The game and the demo.")
    server_missions_passing: bool = Field(
        default=False, description="With server_missions_approach, every other mission too "
        "starts where the champion was before it entered the segment aimed at, at its speed, "
        "offset and heading (its own driving, not a standing start).")
    server_missions_approach_s: float = Field(
        default=3.0, gt=0, le=30.0, description="How long before the champion's failure a "
        "mission on its approach starts (server_missions_approach) [s].")
    server_missions_ensemble: int = Field(
        default=5, ge=2, le=16, description="Ensemble members whose steering spread measures "
        "where the champion is unsure, for the missions [count].")
    server_missions_max_rows: int = Field(
        default=50_000, ge=100, le=10_000_000, description="At most this many rows of the "
        "aggregated data (drawn from it) train the missions' ensemble [rows].")
    server_ws_max_message_bytes: int = Field(
        default=1024, ge=64, le=65536, description="Largest client WebSocket message [bytes]."
    )
    server_ws_max_inputs_per_s: float = Field(
        default=60.0, gt=0, description="Client messages allowed per second (token bucket)."
    )
    server_ws_max_errors: int = Field(
        default=20, gt=0, description="Protocol errors tolerated before the socket is closed."
    )
    server_ws_send_queue: int = Field(
        default=8, gt=0, le=1024, description="Frames queued per client; oldest dropped [count]."
    )
    server_watch_hz: float = Field(default=10.0, gt=0, le=20, description="Spectator rate [Hz].")
    server_max_watchers: int = Field(
        default=256, gt=0, description="Simultaneous spectator sockets [count]."
    )
    server_watch_max_runs: int = Field(
        default=64, gt=0, description="Live runs listed in one spectator frame [count]."
    )
    server_judge_process: bool = Field(
        default=True, description="Judge in a child process (False: in a server thread)."
    )
    judge_url: str = Field(
        default="", description="Redis URL of a shared judge (`crowdlearning judge`) for several "
        "game servers; empty = this server judges its own runs.")
    server_verdict_queue: int = Field(
        default=10_000, gt=0,
        description="Finished runs waiting for a verdict, kept on disk (~0.5 MB each) [count].")
    server_settle_interval_s: float = Field(
        default=2.0, gt=0, description="How often pending payouts are settled [s]."
    )
    server_deposit_poll_s: float = Field(
        default=2.0, gt=0, le=600, description="How often deposits are read from the mirror [s]."
    )
    server_round_interval_s: float = Field(
        default=600.0, gt=0, description="How often improving contributions are merged [s]."
    )
    server_token_ttl_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="Session token lifetime [s]."
    )
    server_max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, le=16 * 1024 * 1024,
        description="Largest HTTP request body, refused with 413 before it is parsed [bytes].")
    server_trusted_proxies: str = Field(
        default="", description="Reverse proxies (load balancers) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed: comma-separated addresses or networks; empty = none "
        "(the client is the socket's peer, whatever headers it sends).")
    server_allowed_origins: str = Field(
        default="", description="Origins besides the server's own (the request's Host) whose "
        "pages may send cookie-authenticated POST/PUT/PATCH/DELETE requests: comma-separated "
        "scheme://host[:port], e.g. https://play.example.com; empty = only the server's own.")
    server_password_min_score: int = Field(
        default=2, ge=0, le=4, description="Least zxcvbn score (0-4) of a new account's password; "
        "passwords containing the user name are refused whatever their score.")
    server_password_hash_workers: int = Field(
        default=2, ge=1, le=64,
        description="Argon2id hashes computed at once (each holds 64 MiB and a core) [count].")
    server_password_hash_queue: int = Field(
        default=64, ge=0, le=100_000,
        description="Sign-ups and sign-ins waiting for a hash; beyond, 503 busy [count].")
    server_auth_per_ip_per_min: int = Field(
        default=30, gt=0, description="Sign-up and sign-in attempts per client address [/min].")
    server_login_failures: int = Field(
        default=10, gt=0, description="Failed sign-ins per name and address per 15 min [count].")
    server_link_attempts_per_hour: int = Field(
        default=10, gt=0, description="Hedera account link attempts per player per hour.")
    server_challenge_ttl_s: int = Field(
        default=300, gt=0, description="Hedera link challenge lifetime [s]."
    )
    server_idempotency_ttl_s: int = Field(
        default=24 * 3600, gt=0, description="How long the first answer to a wallet request "
        "with an Idempotency-Key is kept to answer its retries [s].")
    server_dev_deposit_max_tinybar: int = Field(
        default=100 * 100_000_000, gt=0, description="Largest development deposit [tinybar]."
    )
    server_dev_faucet_daily_tinybar: int = Field(
        default=1000 * 100_000_000, gt=0,
        description="Most the development faucet gives one player in 24 h [tinybar].")
    server_reward_budget_tinybar: int = Field(
        default=10_000 * 100_000_000, gt=0, description="Reward budget funded at first start."
    )
    server_eval_tracks: int = Field(
        default=8, gt=0, le=64, description="Hidden tracks for the champion's lap times [count]."
    )


    @model_validator(mode="after")
    def _hold_covers_the_largest_penalty(self) -> Settings:
        if self.price_penalty_cap_tinybar > self.ledger_hold_tinybar:
            raise ValueError(
                f"price_penalty_cap_tinybar ({self.price_penalty_cap_tinybar}) exceeds "
                f"ledger_hold_tinybar ({self.ledger_hold_tinybar}): a paid run must hold the "
                "largest penalty it can incur")
        if self.ledger_hold_tinybar > self.ledger_stake_minimum_tinybar:
            raise ValueError(
                f"ledger_hold_tinybar ({self.ledger_hold_tinybar}) exceeds "
                f"ledger_stake_minimum_tinybar ({self.ledger_stake_minimum_tinybar}): the "
                "minimum stake must cover one paid run's hold")
        if self.server_disturbance_low > self.server_disturbance_high:
            raise ValueError(
                f"server_disturbance_low ({self.server_disturbance_low}) exceeds "
                f"server_disturbance_high ({self.server_disturbance_high})")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
