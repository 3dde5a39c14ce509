"""What a keyboard player's data is worth: keys as full lock (before issue 16) against the wheel.

Scripted keyboard players (``crowd.device_players``) play 30-second sessions against the initial
model on play tracks, in label and in takeover mode. Each session is played twice from the same
start by the same persona: (a) **full lock**, as the Play page sent keys before: a held side is
steer +-1 (throttle +-1), no key is no input; (b) **wheel**: the held keys go to the server, which
ramps them through ``learning.device.KeyboardWheel`` and labels them
``proposal + gain * (wheel - proposal)`` with the run's estimated gain. Both runs get the run's
own reaction-delay estimate (as the platform does) and are judged by the same judge. A gamepad
player (analog, 200 ms late, small noise) is the control: the device change must not touch it.

Printed per persona and mode: the decisions of each variant, the mean effect in basis points,
and the mean steering gain estimated (wheel variant).

Run: ``.venv/bin/python bench/bench_keyboard.py [--sessions 6] [--personas keyboard-threshold]``.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from tqdm import tqdm

from crowdlearning.crowd.device_players import make_device_persona
from crowdlearning.crowd.personas import Persona
from crowdlearning.evaluation.curriculum import play_tracks
from crowdlearning.evaluation.verdict import Judge, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.device import KEY_DOWN, KEY_LEFT, KEY_RIGHT, KEY_UP, with_estimated_gain
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.learning.reaction import with_estimated_delay
from crowdlearning.learning.session import PlayerInputs, SessionBatch, SessionSpec
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track import Track

PERSONAS = ("keyboard-threshold", "keyboard-200", "keyboard-wrong", "gamepad-200")


def full_lock(codes: np.ndarray) -> np.ndarray:
    """Held keys as the Play page sent them before: +-1 per held side, NaN without a key."""
    codes = np.asarray(codes)
    left, right = (codes & KEY_LEFT) > 0, (codes & KEY_RIGHT) > 0
    up, down = (codes & KEY_UP) > 0, (codes & KEY_DOWN) > 0
    steer = np.where(left & ~right, 1.0, np.where(right & ~left, -1.0, np.nan))
    throttle = np.where(up & ~down, 1.0, np.where(down & ~up, -1.0, np.nan))
    return np.stack([steer, throttle], axis=1)


def session(policy: Policy, persona: Persona, track: Track, start_s_m: float, mode: str,
            sid: str, *, legacy: bool) -> Contribution:
    spec = SessionSpec(persona.name, sid, track, start_s_m=start_s_m, mode=mode, beta=0.5)
    batch = SessionBatch(policy, [spec], model_version=0, max_ticks=600)
    rows = np.array([0])
    while not batch.done:
        answer = persona.act(batch.frame(), rows)
        inputs = PlayerInputs.none(1)
        if legacy and len(answer) > 3:
            player = full_lock(answer[3])
            # the old page: intervene while a steering key is held
            inputs.set_rows(rows, (player, answer[1], np.isfinite(player[:, 0])))
        else:
            inputs.set_rows(rows, answer)
        batch.advance(inputs)
    (contribution,) = batch.contributions()
    return contribution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=6, help="sessions per persona and mode")
    parser.add_argument("--personas", nargs="*", default=list(PERSONAS))
    args = parser.parse_args()
    net, _ = train_initial_model(0)
    labels = LabelConfig()
    judge = Judge(net, 0, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS),
                  config=VerdictConfig(), labels=labels)
    tracks = list(play_tracks(args.sessions).values())
    print(f"{'persona':<19} {'mode':<9} {'full lock: decisions':<40} {'bp':>6}   "
          f"{'wheel: decisions':<40} {'bp':>6} {'gain':>5}")
    for name in args.personas:
        for mode in ("label", "takeover"):
            result: dict[str, Counter[str]] = {"lock": Counter(), "wheel": Counter()}
            effect: dict[str, list[int]] = {"lock": [], "wheel": []}
            gains = []
            for k in tqdm(range(args.sessions), desc=f"{name} {mode}", leave=False):
                track = tracks[k]
                start = float(np.random.default_rng(k).uniform(0, track.length_m))
                for variant in ("lock", "wheel"):
                    persona = make_device_persona(name, np.random.default_rng(100 + k))
                    assert persona is not None
                    c = session(Policy(net), persona, track, start, mode, f"{name}-{mode}-{k}",
                                legacy=variant == "lock")
                    c = with_estimated_delay(c, track, max_delay=labels.max_delay_ticks)
                    c = with_estimated_gain(c, track, delay=labels.delay_of(c))
                    if "device_gain" in c.meta:
                        gains.append(c.meta["device_gain"]["steer"])
                    verdict = judge.judge(c)
                    result[variant][verdict.decision.value] += 1
                    effect[variant].append(verdict.effect_bp)
            gain = f"{np.mean(gains):.2f}" if gains else "-"
            print(f"{name:<19} {mode:<9} {_counts(result['lock']):<40} "
                  f"{np.mean(effect['lock']):>6.0f}   {_counts(result['wheel']):<40} "
                  f"{np.mean(effect['wheel']):>6.0f} {gain:>5}", flush=True)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {d}" for d, n in sorted(counter.items()))


if __name__ == "__main__":
    main()
