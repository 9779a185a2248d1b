"""SB3 callbacks: smoothness scalars in TensorBoard, evaluation, atomic checkpoints."""

from __future__ import annotations

from collections import deque
from copy import deepcopy
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

from smoothrl.envs.keys import ACTION_INFO_KEY
from smoothrl.metrics import SMOOTHNESS_KEYS, mean_report, smoothness_report
from smoothrl.run.episodes import run_episodes, summarize
from smoothrl.rundir import atomic_write, checkpoint_paths, checkpoint_steps

#: TensorBoard names of the smoothness metrics (``smoothness/*`` in training, ``eval/*`` in evaluation).
TB_NAMES = {"continuity_cost": "continuity_cost", "jerk_rms": "jerk_rms", "sm": "sm"}


class SmoothnessCallback(BaseCallback):
    """
    Log ``smoothness/continuity_cost`` (x100), ``smoothness/jerk_rms`` and ``smoothness/sm`` at the end of
    every rollout: the mean over the last ``window`` finished training episodes, computed from
    the actions the envs actually received (``info["action_unit"]``, set by ``ActionTrace``).

    Each parallel env keeps its own trace, cut at its own episode ends, so no metric ever
    spans a reset or mixes two envs.

    :param window: number of recent episodes averaged (like SB3's ``rollout/ep_rew_mean``)
    """

    def __init__(self, window: int = 100) -> None:
        super().__init__()
        self.window = window
        self._traces: list[list[np.ndarray]] = []
        self._reports: deque[dict[str, float]] = deque(maxlen=window)

    def _init_callback(self) -> None:
        self._traces = [[] for _ in range(self.training_env.num_envs)]

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        dones = self.locals["dones"]
        for i, info in enumerate(infos):
            if ACTION_INFO_KEY in info:
                self._traces[i].append(np.asarray(info[ACTION_INFO_KEY], dtype=np.float64))
            if dones[i]:
                if self._traces[i]:
                    self._reports.append(smoothness_report(np.stack(self._traces[i])))
                self._traces[i] = []
        return True

    def _on_rollout_end(self) -> None:
        if not self._reports:
            return
        means = mean_report(self._reports)
        for key in SMOOTHNESS_KEYS:
            if np.isfinite(means[key]):
                self.logger.record(f"smoothness/{TB_NAMES[key]}", means[key])


class SmoothnessEvalCallback(BaseCallback):
    """
    Evaluate every ``eval_freq`` environment steps and log ``eval/mean_reward``,
    ``eval/std_reward``, ``eval/mean_ep_length``, the smoothness metrics (``eval/continuity_cost``,
    ``eval/jerk_rms``, ``eval/sm``) and every KPI the env reports (``eval/<kpi>``).

    Uses the same episode runner as ``smoothrl eval``; the eval env's normalization statistics
    are copied from the training env before each evaluation (frozen during it).

    :param eval_env: evaluation env from ``make_env(..., training=False)``
    :param eval_freq: environment steps between evaluations (over all training envs)
    :param n_episodes: episodes per evaluation
    :param deterministic: deterministic actions
    """

    def __init__(self, eval_env: VecEnv, eval_freq: int, n_episodes: int = 5, deterministic: bool = True) -> None:
        super().__init__()
        self.eval_env = eval_env
        self.eval_freq = eval_freq
        self.n_episodes = n_episodes
        self.deterministic = deterministic
        self._next = eval_freq

    def _init_callback(self) -> None:
        self._next = (self.model.num_timesteps // self.eval_freq + 1) * self.eval_freq

    def _on_step(self) -> bool:
        if self.num_timesteps < self._next:
            return True
        self._next = (self.num_timesteps // self.eval_freq + 1) * self.eval_freq
        # copy the statistics VecNormalize to VecNormalize: the training env may carry more wrappers
        # (noise augmentation) than the eval env, which SB3's sync_envs_normalization refuses
        train_norm, eval_norm = unwrap_vec_normalize(self.training_env), unwrap_vec_normalize(self.eval_env)
        if train_norm is not None and eval_norm is not None:
            eval_norm.obs_rms = deepcopy(train_norm.obs_rms)
            eval_norm.ret_rms = deepcopy(train_norm.ret_rms)
        summary = summarize(run_episodes(self.model, self.eval_env, self.n_episodes, self.deterministic))
        self.logger.record("eval/mean_reward", summary["mean_return"])
        self.logger.record("eval/std_reward", summary["std_return"])
        self.logger.record("eval/mean_ep_length", summary["mean_length"])
        for key, value in summary.items():
            skip = key in ("mean_return", "std_return", "mean_length", "episodes") or not np.isscalar(value)
            if skip or not np.isfinite(value):
                continue
            self.logger.record(f"eval/{TB_NAMES.get(key, key)}", value)
        self.logger.dump(self.num_timesteps)
        return True


def save_checkpoint(model, run_dir: str | Path, keep_replay_buffers: int = 1) -> int:
    """
    Save a complete checkpoint atomically: normalization statistics and replay buffer first,
    the model last (its presence marks the checkpoint complete).

    Replay buffers are large: only the newest ``keep_replay_buffers`` are kept.

    :param model: the algorithm
    :param run_dir: the run directory
    :param keep_replay_buffers: replay buffer files to keep
    :return: the step count saved
    """
    ckpt = checkpoint_paths(run_dir, model.num_timesteps)
    vec_normalize = model.get_vec_normalize_env()
    if vec_normalize is not None:
        atomic_write(ckpt.vecnormalize, vec_normalize.save)
    has_buffer = getattr(model, "replay_buffer", None) is not None
    if has_buffer:
        atomic_write(ckpt.replay_buffer, model.save_replay_buffer)
    atomic_write(ckpt.model, model.save)
    if has_buffer:  # only once the new checkpoint is complete are older buffers removed
        for steps in checkpoint_steps(run_dir, "replay_buffer")[:-keep_replay_buffers]:
            checkpoint_paths(run_dir, steps).replay_buffer.unlink()
    return model.num_timesteps


class AtomicCheckpointCallback(BaseCallback):
    """
    Checkpoint every ``save_freq`` environment steps (over all envs) with :func:`save_checkpoint`.

    Unlike SB3's ``CheckpointCallback`` it counts environment steps, not calls, and never
    leaves a half-written file.

    :param run_dir: the run directory (checkpoints go to ``run_dir/checkpoints``)
    :param save_freq: environment steps between checkpoints
    """

    def __init__(self, run_dir: str | Path, save_freq: int) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.save_freq = save_freq
        self._next = save_freq

    def _init_callback(self) -> None:
        self._next = (self.model.num_timesteps // self.save_freq + 1) * self.save_freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            save_checkpoint(self.model, self.run_dir)
            self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq
        return True
