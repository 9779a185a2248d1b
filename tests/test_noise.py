"""Colored action noise: spectrum, scale, per-env independence, resets, integration."""

from __future__ import annotations

import numpy as np
import pytest

from smoothrl.agents.noise import ColoredActionNoise, VectorizedColoredActionNoise
from smoothrl.errors import SmoothRLError
from smoothrl.metrics import amplitude_spectrum
from smoothrl.run.build import make_env, make_model
from smoothrl.run.overrides import resolve_config


def _slope(beta: float) -> float:
    noise = ColoredActionNoise(beta, 1.0, seq_len=4096, n_actions=1, seed=0)
    x = np.array([noise()[0] for _ in range(4096)])
    f, mag = amplitude_spectrum(x)
    keep = (f > 0.01) & (f < 0.4)
    return float(np.polyfit(np.log(f[keep]), np.log(mag[keep] ** 2), 1)[0])  # power ~ f^slope


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_power_spectrum_falls_as_one_over_f_to_the_beta(beta: float):
    assert _slope(beta) == pytest.approx(-beta, abs=0.25)


def test_scale_and_determinism():
    a = ColoredActionNoise(1.0, [0.5, 2.0], seq_len=5000, n_actions=2, seed=3)
    draws = np.array([a() for _ in range(5000)])
    np.testing.assert_allclose(draws.std(axis=0), [0.5, 2.0], rtol=0.15)
    b = ColoredActionNoise(1.0, [0.5, 2.0], seq_len=5000, n_actions=2, seed=3)
    np.testing.assert_array_equal(np.array([b() for _ in range(50)]), draws[:50])
    with pytest.raises(ValueError, match="beta"):
        ColoredActionNoise(-1.0, 1.0, 10, 1)


def test_each_env_has_its_own_sequence_and_resets_alone():
    vec = VectorizedColoredActionNoise(ColoredActionNoise(1.0, 1.0, 256, 1), n_envs=3, seed=0)
    first = np.array([vec() for _ in range(100)])[:, :, 0]  # (t, env)
    corr = np.corrcoef(first.T)
    assert np.all(np.abs(corr[np.triu_indices(3, 1)]) < 0.5)  # not the same sequence copied
    state = [n._seq.copy() for n in vec.noises]
    vec.reset(indices=[1])
    assert np.array_equal(vec.noises[0]._seq, state[0]) and np.array_equal(vec.noises[2]._seq, state[2])
    assert not np.array_equal(vec.noises[1]._seq, state[1]) and vec.noises[1]._t == 0


def test_td3_with_colored_noise_keeps_one_generator_per_env():
    config = resolve_config(
        "td3",
        "Pendulum-v1",
        "smoke",
        ["noise_type=colored", "noise_beta=1.0", "n_envs=2", "n_timesteps=300", "learning_starts=50"],
    )
    model = make_model(config, make_env(config))
    model.learn(300)
    assert isinstance(model.action_noise, VectorizedColoredActionNoise)  # SB3 did not re-wrap it
    assert len(model.action_noise.noises) == 2
    with pytest.raises(SmoothRLError, match="noise_beta"):
        resolve_config("td3", "Pendulum-v1", "smoke", ["noise_beta=-1"])


def test_sac_colored_exploration_is_used_only_to_explore(tmp_path):
    overrides = [
        "noise_type=colored",
        "noise_beta=1.0",
        "n_envs=2",
        "n_timesteps=300",
        "learning_starts=100",
        "gradient_steps=2",
    ]
    config = resolve_config("sac", "Pendulum-v1", "smoke", overrides)
    env = make_env(config)
    model = make_model(config, env)

    class Counting(VectorizedColoredActionNoise):
        calls = 0

        def __call__(self) -> np.ndarray:
            Counting.calls += 1
            return super().__call__()

    model._colored = Counting(ColoredActionNoise(1.0, 1.0, 1000, 1), n_envs=2, seed=0)
    model.learn(300)
    # one draw per collection step after warm-up: (300 - 100) / 2 envs, although ~400 gradient steps ran
    assert Counting.calls == 100
    model.save(tmp_path / "m.zip")
    loaded = type(model).load(tmp_path / "m.zip", env=env)
    assert loaded.noise_beta == 1.0 and loaded._colored is None  # the generator is not saved
    with pytest.raises(SmoothRLError, match="use_sde"):
        make_model(
            resolve_config("sac", "Pendulum-v1", "smoke", ["noise_type=colored", "noise_beta=1.0", "use_sde=true"]), env
        )
