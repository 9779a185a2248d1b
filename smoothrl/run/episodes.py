"""Playing evaluation episodes: one runner shared by ``evaluate``, the eval callback and ``plot``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from smoothrl.envs.keys import ACTION_INFO_KEY, KPI_INFO_KEY, START_DAY_INFO_KEY
from smoothrl.metrics import SMOOTHNESS_KEYS, mean_report, smoothness_report


@dataclass
class Episode:
    """
    One finished episode.

    :param ret: return (sum of the env's own rewards, before any normalization)
    :param length: number of steps
    :param actions: the actions the env received, in normalized units, shape ``(length, d)``
    :param kpis: the env's KPIs at the last step (empty when it reports none)
    :param start_day: the day of the year the episode started on (HVAC envs; else ``None``)
    """

    ret: float
    length: int
    actions: np.ndarray
    kpis: dict[str, float] = field(default_factory=dict)
    start_day: int | None = None

    def report(self) -> dict[str, float]:
        """:return: the smoothness metrics of this episode's actions, then its KPIs"""
        return {**smoothness_report(self.actions), **self.kpis}


def episode_kpis(info: dict[str, Any]) -> dict[str, float]:
    """
    :param info: an env's ``info`` at the last step of an episode
    :return: its KPIs as floats (non-numeric entries dropped)
    """
    kpis = info.get(KPI_INFO_KEY) or {}
    return {str(k): float(v) for k, v in kpis.items() if np.isscalar(v) and not isinstance(v, str)}


def run_episodes(model: BaseAlgorithm, env: VecEnv, n_episodes: int, deterministic: bool = True) -> list[Episode]:
    """
    Play ``n_episodes`` complete episodes.

    The env is reset first. With several envs, episodes are taken in the order they finish,
    each env contributing at most ``ceil(n / n_envs)`` so that short episodes do not crowd out
    long ones (as SB3's ``evaluate_policy`` does).

    :param model: the policy
    :param env: a vectorized env built by ``make_env`` (with the ``ActionTrace`` and ``Monitor`` wrappers)
    :param n_episodes: episodes to play
    :param deterministic: deterministic or sampled actions
    :return: the episodes
    """
    n = env.num_envs
    quota = np.array([(n_episodes + i) // n for i in range(n)])
    done_count = np.zeros(n, dtype=int)
    traces: list[list[np.ndarray]] = [[] for _ in range(n)]
    rewards = np.zeros(n)
    episodes: list[Episode] = []
    obs = env.reset()
    state = None
    starts = np.ones(n, dtype=bool)
    while (done_count < quota).any():
        actions, state = model.predict(obs, state=state, episode_start=starts, deterministic=deterministic)
        obs, reward, dones, infos = env.step(actions)
        starts = dones
        for i in range(n):
            if ACTION_INFO_KEY in infos[i]:
                traces[i].append(np.asarray(infos[i][ACTION_INFO_KEY], dtype=np.float64))
            rewards[i] += reward[i]
            if not dones[i]:
                continue
            if done_count[i] < quota[i]:
                # Monitor's record is the env's own reward, untouched by VecNormalize or shaping wrappers.
                monitor = infos[i].get("episode")
                ret = float(monitor["r"]) if monitor is not None else float(rewards[i])
                length = int(monitor["l"]) if monitor is not None else len(traces[i])
                acts = np.stack(traces[i]) if traces[i] else np.zeros((0, 1))
                day = infos[i].get(START_DAY_INFO_KEY)
                episodes.append(Episode(ret, length, acts, episode_kpis(infos[i]), None if day is None else int(day)))
                done_count[i] += 1
            traces[i] = []
            rewards[i] = 0.0
    return episodes


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    """
    The evaluation summary of several episodes.

    :param episodes: finished episodes
    :return: ``mean_return``, ``std_return``, ``episodes``, ``mean_length``, the smoothness
        metrics (``continuity_cost`` x100, ``jerk_rms``, ``sm``; episode means), the mean of
        each KPI the env reported, ``episode_returns`` and, where the env reports them,
        ``episode_start_days`` (for comparisons paired by episode)
    """
    returns = np.array([e.ret for e in episodes], dtype=np.float64)
    per_episode = mean_report(e.report() for e in episodes)
    summary: dict[str, Any] = {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "episodes": len(episodes),
        "mean_length": float(np.mean([e.length for e in episodes])),
    }
    summary.update({k: per_episode[k] for k in SMOOTHNESS_KEYS})
    summary.update({k: v for k, v in per_episode.items() if k not in SMOOTHNESS_KEYS})
    summary["episode_returns"] = [float(r) for r in returns]
    if all(e.start_day is not None for e in episodes):
        summary["episode_start_days"] = [int(e.start_day) for e in episodes]  # type: ignore[arg-type]
    return summary
