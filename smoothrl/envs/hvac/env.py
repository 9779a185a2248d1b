"""Gymnasium interfaces of the HVAC simulator: one building, a batch, and SB3's VecEnv."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from smoothrl.envs.hvac.simulator import HVACSimulator
from smoothrl.envs.hvac.spec import HVACSpec, load_spec
from smoothrl.envs.keys import ACTION_INFO_KEY, KPI_INFO_KEY, START_DAY_INFO_KEY
from smoothrl.errors import SmoothRLError

DEFAULT_PRESET = "office_1zone_denver"


class ActionCodec:
    """
    Turns actions into heat-pump signals in ``[-1, 1]`` per zone.

    Continuous: ``Box(-1, 1, (Z,))``, + heats, - cools, ``|a|`` = fraction of capacity; values
    outside the box are clipped and counted. Discrete (staged, ``S`` stages): ``Discrete(1 + 2S)``
    for one zone, ``MultiDiscrete`` for several; 0 is off, ``1..S`` heat at stage ``k``,
    ``S+1..2S`` cool at stage ``k - S``. A discrete action outside the space is an error.

    :param zones: Z
    :param discrete: staged compressor
    :param stages: S
    """

    def __init__(self, zones: int, discrete: bool, stages: int) -> None:
        self.zones, self.discrete, self.stages = zones, discrete, stages
        n = 1 + 2 * stages
        if not discrete:
            self.space: spaces.Space = spaces.Box(-1.0, 1.0, (zones,), dtype=np.float32)
        elif zones == 1:
            self.space = spaces.Discrete(n)
        else:
            self.space = spaces.MultiDiscrete([n] * zones)
        self.levels = np.r_[0.0, np.arange(1, stages + 1) / stages, -np.arange(1, stages + 1) / stages]

    def encode(self, signals: np.ndarray) -> np.ndarray:
        """
        The action that requests each signal (what a controller that thinks in signals sends).

        :param signals: ``(batch, Z)`` in ``[-1, 1]``; on a staged plant, rounded to the nearest stage
        :return: continuous actions ``(batch, Z)`` float32, or discrete ones (``(batch,)`` for one zone)
        """
        signals = np.asarray(signals, dtype=np.float64)
        if not self.discrete:
            return signals.astype(np.float32)
        stage = np.round(np.clip(np.abs(signals), 0.0, 1.0) * self.stages).astype(np.int64)
        idx = np.where(signals > 0, stage, np.where(signals < 0, self.stages + stage, 0))
        idx = np.where(stage == 0, 0, idx)
        return idx[:, 0] if self.zones == 1 else idx

    def decode(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """
        :param actions: ``(batch, Z)`` (or ``(batch,)`` for one discrete zone)
        :return: signals ``(batch, Z)``, entries clipped per row ``(batch,)``, and the actions
            as received in normalized units ``(batch, Z)``: the requested signal mapped to
            ``[0, 1]`` (cooling 0, off 0.5, heating 1), for discrete actions too, so that
            smoothness is measured on the physical signal, not on action indices
        :raises SmoothRLError: for NaN, a wrong shape or a discrete action outside the space
        """
        a = np.asarray(actions)
        batch = a.shape[0] if a.ndim else 1
        a = a.reshape(batch, -1)
        if a.shape[1] != self.zones:
            raise SmoothRLError(f"action has {a.shape[1]} entries per building, the env has {self.zones} zones")
        if self.discrete:
            if not np.issubdtype(a.dtype, np.integer) and not np.all(np.mod(a, 1) == 0):
                raise SmoothRLError(f"discrete HVAC actions must be integers, got {a.ravel()[:4]}")
            idx = a.astype(np.int64)
            if idx.min() < 0 or idx.max() >= len(self.levels):
                raise SmoothRLError(f"action {idx.ravel().tolist()} is outside {self.space}")
            signal = self.levels[idx]
            return signal, np.zeros(batch), (signal + 1.0) / 2.0
        a = a.astype(np.float64)
        if np.isnan(a).any():
            raise SmoothRLError("HVAC action contains NaN")
        clipped = np.minimum(np.maximum(a, -1.0), 1.0)
        return clipped, (clipped != a).sum(axis=1).astype(np.float64), (clipped + 1.0) / 2.0


def _observation_space(sim: HVACSimulator) -> spaces.Box:
    n = len(sim.obs_names)
    return spaces.Box(-np.inf, np.inf, (n,), dtype=np.float32)


def _build(
    preset: str | None,
    discrete: bool,
    split: str,
    batch: int,
    spec: HVACSpec | None,
    overrides: dict[str, Any],
    in_order: bool = False,
) -> tuple[HVACSimulator, ActionCodec]:
    if split not in ("train", "test"):
        raise SmoothRLError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(in_order, bool):
        raise SmoothRLError(f"in_order must be true or false, got {in_order!r}")
    spec = spec or load_spec(preset, DEFAULT_PRESET, **overrides)
    sim = HVACSimulator(spec, batch, discrete, split, in_order)
    return sim, ActionCodec(len(spec.zones), discrete, spec.plant.stages)


class HVACEnv(gym.Env):
    """
    One building (``smoothrl/HVAC-v0``, ``smoothrl/HVACDiscrete-v0``, ``smoothrl/HVACMultiZone-v0``).

    Reward: ``-(energy cost [$] + comfort_weight * discomfort [K h summed over zones])`` per step.
    Episodes start at a random day of the split's weeks (with ``in_order``, on the split's days
    one after the other, each once, starting again on a reset with a seed; ``reset(options=
    {"start_day": d})`` picks a day of the year instead) and are truncated after ``episode_days``.
    ``info`` holds the step's ``power_kw``, ``cost``, ``discomfort_kh``, ``t_zone``, and at the
    episode's last step ``kpis`` (episode totals, BOPTEST definitions) and ``start_day`` (the
    episode's first day of the year, 0-based).

    :param preset: ``envs/<preset>.yaml`` (default: the id's preset)
    :param discrete: staged on/off compressors (discrete actions)
    :param split: ``"train"`` or ``"test"`` days
    :param in_order: play the split's days in order, each once (what evaluation does)
    :param spec: a ready spec instead of a preset (overrides are then ignored)
    :param render_mode: accepted for gymnasium's API (SB3 passes one when given an env id); the
        env does not render, so it is ignored
    :param overrides: spec fields to replace (dicts are merged), e.g. ``step_minutes=5``
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        preset: str | None = None,
        discrete: bool = False,
        split: str = "train",
        in_order: bool = False,
        spec: HVACSpec | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        self.render_mode = render_mode
        self.sim, self.codec = _build(preset, discrete, split, 1, spec, overrides, in_order)
        self.action_space = self.codec.space
        self.observation_space = _observation_space(self.sim)
        self._rngs = [np.random.default_rng()]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rngs = [np.random.default_rng(seed)]
            self.sim.restart_order()
        self.sim.reset(np.ones(1, dtype=bool), self._rngs, (options or {}).get("start_day"))
        return self.sim.observation()[0], {}

    def step(self, action: Any):
        signal, clipped, _ = self.codec.decode(np.asarray(action)[None, ...])
        reward, truncated, values = self.sim.step(signal, clipped)
        info: dict[str, Any] = {
            "power_kw": float(values["power_kw"][0]),
            "cost": float(values["cost"][0]),
            "discomfort_kh": float(values["discomfort_kh"][0]),
            "t_zone": self.sim.t_zone[0].copy(),
        }
        if truncated[0]:
            info[KPI_INFO_KEY] = self.sim.kpis(0)
            info[START_DAY_INFO_KEY] = int(self.sim.episode_start_day[0])
        return self.sim.observation()[0], float(reward[0]), False, bool(truncated[0]), info


class HVACVectorEnv(gym.vector.VectorEnv):
    """
    ``num_envs`` buildings simulated together by one batched core (same-step autoreset:
    a finished building is reset within the step; its last observation and info are in
    ``infos["final_obs"]`` / ``infos["final_info"]``).

    Building ``i`` reset with seed ``s`` follows the same trajectory as :class:`HVACEnv` reset
    with seed ``s + i``.

    :param num_envs: number of buildings
    :param preset: see :class:`HVACEnv`
    :param discrete: see :class:`HVACEnv`
    :param split: see :class:`HVACEnv`
    :param in_order: see :class:`HVACEnv` (buildings take the next days in turn)
    :param spec: see :class:`HVACEnv`
    :param overrides: see :class:`HVACEnv`
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int,
        preset: str | None = None,
        discrete: bool = False,
        split: str = "train",
        in_order: bool = False,
        spec: HVACSpec | None = None,
        **overrides: Any,
    ) -> None:
        self.num_envs = num_envs
        self.sim, self.codec = _build(preset, discrete, split, num_envs, spec, overrides, in_order)
        self.single_action_space = self.codec.space
        self.single_observation_space = _observation_space(self.sim)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            self._rngs = [np.random.default_rng(s) for s in seeds]
            self.sim.restart_order()
        self.sim.reset(np.ones(self.num_envs, dtype=bool), self._rngs)
        return self.sim.observation(), {}

    def step(self, actions: Any):
        signal, clipped, unit = self.codec.decode(actions)
        reward, truncated, values = self.sim.step(signal, clipped)
        infos: dict[str, Any] = {
            "power_kw": values["power_kw"],
            "cost": values["cost"],
            "discomfort_kh": values["discomfort_kh"],
            ACTION_INFO_KEY: unit,
        }
        if truncated.any():
            infos["final_obs"] = self.sim.observation()
            infos["_final_obs"] = truncated.copy()
            infos["final_info"] = {
                KPI_INFO_KEY: [self.sim.kpis(i) if truncated[i] else None for i in range(self.num_envs)],
                START_DAY_INFO_KEY: self.sim.episode_start_day.copy(),
            }
            infos["_final_info"] = truncated.copy()
            self.sim.reset(truncated, self._rngs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        return self.sim.observation(), reward, terminated, truncated, infos


class HVACVecEnv(VecEnv):
    """
    Stable-Baselines3 ``VecEnv`` over :class:`HVACVectorEnv`: ``--n-envs 64`` steps 64 buildings
    in one numpy call. Each info carries ``action_unit`` (for the smoothness metrics), and at
    an episode end ``terminal_observation``, ``TimeLimit.truncated`` and ``kpis``.

    :param vector_env: the batched env
    """

    def __init__(self, vector_env: HVACVectorEnv) -> None:
        self.venv = vector_env
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        obs, _ = self.venv.reset(seed=seed)
        self._reset_seeds()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        obs, reward, terminated, truncated, infos = self.venv.step(self._actions)
        done = terminated | truncated
        out = [{ACTION_INFO_KEY: infos[ACTION_INFO_KEY][i]} for i in range(self.num_envs)]
        for i in np.flatnonzero(done):
            out[i]["terminal_observation"] = infos["final_obs"][i]
            out[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            out[i][KPI_INFO_KEY] = infos["final_info"][KPI_INFO_KEY][i]
            out[i][START_DAY_INFO_KEY] = int(infos["final_info"][START_DAY_INFO_KEY][i])
        return obs, reward.astype(np.float32), done, out

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.venv, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list[Any]:
        return [getattr(self.venv, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
