"""The gymnasium contract: ``make`` gives an Env, ``make_vec`` the native VectorEnv."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import crowdlearning  # noqa: F401  (registers the envs)
from crowdlearning.errors import SimulationError
from crowdlearning.sim.env import RaceEnv
from crowdlearning.sim.registration import RACE_ENV_ID
from crowdlearning.sim.vector_env import RaceVectorEnv


def test_registered_ids_start_with_the_namespace() -> None:
    ids = [i for i in gymnasium.registry if i.startswith("crowdlearning/")]
    assert RACE_ENV_ID in ids


@pytest.mark.parametrize("kwargs", [{}, {"track": "hairpin-valley", "render_mode": "rgb_array"},
                                    {"track": 17, "random_start": False}])
def test_check_env_passes(kwargs: dict) -> None:
    env = gymnasium.make(RACE_ENV_ID, **kwargs)
    check_env(env.unwrapped)
    assert isinstance(env.unwrapped, RaceEnv)


def test_render_returns_an_image() -> None:
    env = gymnasium.make(RACE_ENV_ID, track="oval", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(np.array([0.0, 1.0], dtype=np.float32))
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.std() > 5  # not a blank picture


def test_reset_seed_fixes_track_and_start() -> None:
    env = RaceEnv()
    _, a = env.reset(seed=4)
    _, b = env.reset(seed=4)
    _, c = env.reset(seed=5)
    assert a == b
    assert a["track_digest"] != c["track_digest"]


def test_bad_reset_option_and_step_after_end_are_clear_errors() -> None:
    env = RaceEnv(track="oval")
    with pytest.raises(SimulationError, match="unknown reset options"):
        env.reset(seed=0, options={"speed": 3})
    env.reset(seed=0, options={"start_s_m": 0.0})
    terminated = False
    for _ in range(400):  # full throttle, full left: off the track soon
        _, _, terminated, truncated, _ = env.step(np.array([1.0, 1.0]))
        if terminated or truncated:
            break
    assert terminated
    with pytest.raises(SimulationError, match="episode is over"):
        env.step(np.array([0.0, 0.0]))


def test_make_vec_gives_the_native_vector_env() -> None:
    venv = gymnasium.make_vec(RACE_ENV_ID, num_envs=64, vectorization_mode="vector_entry_point")
    assert isinstance(venv, RaceVectorEnv)
    obs, info = venv.reset(seed=3)
    assert obs.shape == (64, *venv.single_observation_space.shape)
    assert venv.observation_space.contains(obs)
    assert set(info["track_index"]) <= set(range(venv.sim.bank.num_tracks))


def test_vector_env_autoresets_on_the_next_step() -> None:
    venv = RaceVectorEnv(8, tracks=["oval"], random_start=False)
    venv.reset(seed=0)
    steer_off = np.tile([1.0, 1.0], (8, 1))
    done_at = None
    for t in range(400):
        _, reward, term, trunc, _ = venv.step(steer_off)
        if term.any():
            done_at = t
            break
    assert done_at is not None and term.all()  # identical cars leave together
    obs, reward, term, trunc, info = venv.step(np.zeros((8, 2)))
    assert np.all(reward == 0.0) and not term.any() and not trunc.any()
    assert np.all(info["progress_m"] == 0.0)  # fresh episodes
    assert venv.observation_space.contains(obs)


def test_vector_env_rejects_wrong_action_shape() -> None:
    venv = RaceVectorEnv(4, tracks=["oval"])
    venv.reset(seed=0)
    with pytest.raises(SimulationError, match="shape"):
        venv.step(np.zeros((3, 2)))
