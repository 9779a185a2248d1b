"""SB3 VecEnv wrappers: the vectorized twins of ``envs/wrappers.py`` (for batched envs such as HVAC)."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from smoothrl.envs.wrappers import ActionHistory, action_dim, extended_space, unit_actions


class VecActionSmoothnessReward(VecEnvWrapper):
    """
    :class:`~smoothrl.envs.wrappers.ActionSmoothnessReward` for a VecEnv: the same penalty and
    the same observation, computed for all envs at once. The terminal observation of a
    finished episode carries the history of that episode.

    :param venv: the vectorized env (put it outside ``VecMonitor``)
    :param weights: penalty weight per derivative order
    """

    def __init__(self, venv: VecEnv, weights: dict[int, float]) -> None:
        self.history = ActionHistory(venv.num_envs, action_dim(venv.action_space), weights)
        space = extended_space(venv.observation_space, self.history.k * self.history.dim)
        super().__init__(venv, observation_space=space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        obs = self.venv.reset()
        self.history.reset(np.ones(self.num_envs, dtype=bool))
        return np.concatenate([obs, self.history.observation()], axis=1)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, done, infos = self.venv.step_wait()
        penalty = self.history.push(unit_actions(self._actions, infos, self.action_space))
        history = self.history.observation()
        for i in np.flatnonzero(done):
            if "terminal_observation" in infos[i]:
                infos[i]["terminal_observation"] = np.concatenate([infos[i]["terminal_observation"], history[i]])
        for i, info in enumerate(infos):
            info["smoothness_penalty"] = float(penalty[i])
        self.history.reset(done)
        return (
            np.concatenate([obs, self.history.observation()], axis=1),
            reward - penalty.astype(reward.dtype),
            done,
            infos,
        )


class VecObservationNoise(VecEnvWrapper):
    """
    Noise augmentation: every observation the agent receives while training (also the terminal
    observations of finished episodes) gets ``N(0, sigma^2 I)`` added. Put it outside
    ``VecNormalize`` so that ``sigma`` is in the normalized units the policy sees.

    :param venv: the vectorized env
    :param sigma: noise standard deviation
    :param seed: seed of the noise
    """

    def __init__(self, venv: VecEnv, sigma: float, seed: int | None = None) -> None:
        super().__init__(venv)
        self.sigma = float(sigma)
        self.rng = np.random.default_rng(seed)

    def _noisy(self, obs: np.ndarray) -> np.ndarray:
        return (obs + self.sigma * self.rng.standard_normal(obs.shape)).astype(obs.dtype)

    def reset(self) -> np.ndarray:
        return self._noisy(self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, done, infos = self.venv.step_wait()
        for info in infos:
            if info.get("terminal_observation") is not None:
                info["terminal_observation"] = self._noisy(np.asarray(info["terminal_observation"]))
        return self._noisy(obs), reward, done, infos
