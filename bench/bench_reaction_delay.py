"""What a late player's data is worth, with and without the per-run reaction-delay estimate.

Players who steer like the expert but ``d`` ticks late (``late-d`` personas, d = 3, 6, 10) each
play 30-second label-mode sessions against the initial model on several play tracks. Every
contribution is judged twice by the same judge (same champion, same hidden suite, same seeds):
(a) labels put on the frame each input answered (no correction: ``reaction_delay_ticks=0``), and
(b) labels shifted by the run's own estimated delay (``learning.reaction``). Printed per delay:
how often the estimate was exact, the mean measured effect in basis points of each, and the
decisions. An expert (d = 0) is the control: the estimate must not hurt it.

Run: ``.venv/bin/python bench/bench_reaction_delay.py [--sessions 4]``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from crowdlearning.crowd.personas import make_persona
from crowdlearning.evaluation.curriculum import play_tracks
from crowdlearning.evaluation.verdict import Judge, VerdictConfig
from crowdlearning.learning.bootstrap import (
    INITIAL_DEMO_TICKS,
    INITIAL_DEMO_TRACKS,
    expert_demonstrations,
    train_initial_model,
)
from crowdlearning.learning.contribution import Contribution
from crowdlearning.learning.labels import LabelConfig
from crowdlearning.learning.reaction import with_estimated_delay
from crowdlearning.learning.session import PlayerInputs, SessionBatch, SessionSpec
from crowdlearning.policy.network import Policy
from crowdlearning.sim.track import Track


def _session(policy: Policy, persona_name: str, track: Track, rng: np.random.Generator,
             sid: str) -> Contribution:
    persona = make_persona(persona_name, rng)
    spec = SessionSpec(persona_name, sid, track, mode="label", beta=0.5)
    batch = SessionBatch(policy, [spec], model_version=0, max_ticks=600)
    rows = np.array([0])
    while not batch.done:
        act, tick, held = persona.act(batch.frame(), rows)
        batch.advance(PlayerInputs(act, tick, held))
    (contribution,) = batch.contributions()
    return contribution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4, help="sessions per delay")
    args = parser.parse_args()
    net, _ = train_initial_model(0)
    judge = Judge(net, 0, expert_demonstrations(INITIAL_DEMO_TRACKS, INITIAL_DEMO_TICKS),
                  config=VerdictConfig(), labels=LabelConfig(estimate_delay=True))
    uncorrected = replace(LabelConfig(), estimate_delay=False)
    tracks = list(play_tracks(3 * args.sessions).values())
    rng = np.random.default_rng(0)
    print(f"{'player':<8} {'estimate exact':>14} {'effect bp: none':>16} {'estimated':>10}  "
          f"decisions (none -> estimated)")
    for delay in (0, 3, 6, 10):
        name = "expert" if delay == 0 else f"late-{delay}"
        exact, plain, fixed = 0, [], []
        decisions: Counter[str] = Counter()
        for k in tqdm(range(args.sessions), desc=name, leave=False):
            c = _session(Policy(net), name, tracks[k], rng, f"{name}-{k}")
            estimated = with_estimated_delay(c, tracks[k])
            exact += estimated.meta.get("reaction_delay_ticks") == delay
            judge.label_config = uncorrected
            a = judge.judge(c)
            judge.label_config = LabelConfig(estimate_delay=True)
            b = judge.judge(estimated)
            plain.append(a.effect_bp)
            fixed.append(b.effect_bp)
            decisions[f"{a.decision.value}->{b.decision.value}"] += 1
        print(f"{name:<8} {exact:>10}/{args.sessions:<3} {np.mean(plain):>16.0f} "
              f"{np.mean(fixed):>10.0f}  {dict(decisions)}")


if __name__ == "__main__":
    main()
