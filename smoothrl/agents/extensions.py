"""What smoothrl adds to an SB3 algorithm, one mixin per family.

- :class:`OnPolicyExtensions` (PPO, A2C): ``action_reg`` on the rollout buffer's consecutive
  states, gSDE's ``learn_features``, ``predict(..., resample_noise=True)``;
- :class:`OffPolicyExtensions` (SAC, TD3, DDPG): ``action_reg`` on the replay buffer's
  consecutive states, ``predict(..., resample_noise=True)``, and :meth:`_after_env_step`, the
  one cooperative hook where an off-policy algorithm sees every env's episode ends.

Every extension is a constructor keyword that is off by default; with all of them off, the
algorithm is SB3's (same policy class, same update, same logged keys, same cost).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import is_vectorized_observation

from smoothrl.agents.buffers import HistoryReplayBuffer, HistoryRolloutBuffer
from smoothrl.agents.losses import ActionReg, action_reg_loss, as_action_reg, policy_actions, reg_inputs
from smoothrl.agents.policies import GSDEActorCriticPolicy


class _Extensions:
    """
    What both families share: the ``action_reg`` keyword and resampling ``predict``.

    :param args: the algorithm's positional arguments
    :param action_reg: the loss terms (:class:`ActionReg` or its keywords as a dict); ``None``: off
    :param kwargs: the algorithm's keyword arguments
    """

    action_reg: ActionReg | None
    #: ``(buffer class keyword, buffer kwargs keyword, buffer class)`` of the algorithm family
    _history_buffer: tuple[str, str, type]

    def __init__(self, *args: Any, action_reg: ActionReg | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.action_reg = as_action_reg(action_reg)
        if self.action_reg is not None and self.action_reg.history > 0:
            class_key, kwargs_key, buffer_class = self._history_buffer
            kwargs.setdefault(class_key, buffer_class)
            kwargs[kwargs_key] = {**(kwargs.get(kwargs_key) or {}), "history": self.action_reg.history}
        super().__init__(*args, **kwargs)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
        resample_noise: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """
        SB3's ``predict``; with ``resample_noise`` and gSDE, stochastic actions use new noise
        (SB3 keeps the last draw).

        :param observation: as for SB3
        :param state: as for SB3
        :param episode_start: as for SB3
        :param deterministic: as for SB3
        :param resample_noise: redraw the gSDE noise (one draw per observation) before predicting
        :return: as for SB3
        """
        if resample_noise and not deterministic and getattr(self, "use_sde", False):
            space = self.observation_space  # type: ignore[attr-defined]
            n = len(observation) if is_vectorized_observation(observation, space) else 1
            self.policy.reset_noise(n)  # type: ignore[attr-defined]
        return super().predict(observation, state, episode_start, deterministic)  # type: ignore[misc]

    #: tests set it to run smoothrl's copy of SB3's update even when every extension is off
    _force_copied_update = False

    def _plain_update(self) -> bool:
        """Whether every extension of the update is off, so that SB3's own ``train`` runs."""
        return self.action_reg is None and not self._force_copied_update

    def _reg_actions(self, obs: th.Tensor) -> th.Tensor:
        """The policy's deterministic action in normalized units, differentiable."""
        raise NotImplementedError

    def _action_reg_term(self, data: Any, logs: dict[str, list[float]]) -> th.Tensor | float:
        """The action-smoothness loss of one batch (0 when ``action_reg`` is off); appends to ``logs``."""
        if self.action_reg is None:
            return 0.0
        loss, values = action_reg_loss(
            self.action_reg,
            self._reg_actions,
            data.observations,
            getattr(data, "prev_observations", None),
            getattr(data, "prev_valid", None),
        )
        self._log_terms(logs, values)
        return loss

    @staticmethod
    def _log_terms(logs: dict[str, list[float]], values: dict[str, float]) -> None:
        """Append one batch's term values to the update's logs."""
        for key, value in values.items():
            logs.setdefault(key, []).append(value)

    def _record_action_reg(self, logs: dict[str, list[float]]) -> None:
        """Log each term's mean as ``train/action_reg_<term>``."""
        for key, values in logs.items():
            self.logger.record(f"train/action_reg_{key}", float(np.mean(values)))  # type: ignore[attr-defined]


class OnPolicyExtensions(_Extensions):
    """
    smoothrl's keywords for PPO and A2C. The rollout buffer keeps each sample's previous states
    for ``action_reg``. SB3's policy classes are kept; only ``policy_kwargs.learn_features`` (let
    gSDE's features backpropagate, which SB3 hardcodes off) selects
    :class:`~smoothrl.agents.policies.GSDEActorCriticPolicy` for ``"MlpPolicy"``.

    :param policy: as for SB3
    :param args: the algorithm's other positional arguments
    :param kwargs: the algorithm's keyword arguments (``action_reg`` among them)
    """

    _history_buffer = ("rollout_buffer_class", "rollout_buffer_kwargs", HistoryRolloutBuffer)

    def __init__(self, policy: Any, *args: Any, **kwargs: Any) -> None:
        if "learn_features" in (kwargs.get("policy_kwargs") or {}) and isinstance(policy, str):
            resolved = self.policy_aliases.get(policy)  # type: ignore[attr-defined]
            if resolved is ActorCriticPolicy:  # SB3's "MlpPolicy"
                policy = GSDEActorCriticPolicy
            elif not (isinstance(resolved, type) and issubclass(resolved, GSDEActorCriticPolicy)):
                raise ValueError(f"policy_kwargs.learn_features needs policy='MlpPolicy', got {policy!r}")
        super().__init__(policy, *args, **kwargs)

    def _reg_actions(self, obs: th.Tensor) -> th.Tensor:
        return policy_actions(self.policy, obs, self.action_space)  # type: ignore[attr-defined]


class OffPolicyExtensions(_Extensions):
    """
    smoothrl's keywords for SAC, TD3 and DDPG. The replay buffer keeps each sample's previous
    states for ``action_reg``; the actor's deterministic action (:meth:`_deterministic_actions`,
    squashed to ``[-1, 1]``) is halved into normalized units. Subclasses that renew per-env
    exploration override :meth:`_after_env_step` and call ``super()``.
    """

    _history_buffer = ("replay_buffer_class", "replay_buffer_kwargs", HistoryReplayBuffer)

    def _deterministic_actions(self, obs: th.Tensor) -> th.Tensor:
        """The actor's deterministic action in ``[-1, 1]``, differentiable."""
        raise NotImplementedError

    def _reg_actions(self, obs: th.Tensor) -> th.Tensor:
        return self._deterministic_actions(obs) / 2.0

    def _shared_actor_pass(self, data: Any, logs: dict[str, list[float]]) -> tuple[th.Tensor, th.Tensor]:
        """
        One deterministic actor pass over the batch and every state the smoothness terms need
        (a deterministic actor's action on the batch is what its own loss takes too).

        :param data: the replay batch (with the previous states)
        :param logs: the terms' values are appended here
        :return: the actor's actions on the batch (``[-1, 1]``) and the smoothness loss
        """
        actions, rows, loss = self._with_reg_states(
            data, logs, lambda x: (a := self._deterministic_actions(x), a / 2.0)
        )
        return actions[rows], loss

    def _with_reg_states(
        self, data: Any, logs: dict[str, list[float]], actor_pass: Callable[[th.Tensor], tuple[Any, th.Tensor]]
    ) -> tuple[Any, slice, th.Tensor]:
        """
        Run ``actor_pass`` once over the batch and every state the smoothness terms need.

        :param data: the replay batch (with the previous states)
        :param logs: the terms' values are appended here
        :param actor_pass: states -> (what the algorithm's own loss needs, normalized actions)
        :return: the first output of ``actor_pass``, the batch's rows in it, the smoothness loss
        """
        prev_obs, prev_valid = getattr(data, "prev_observations", None), getattr(data, "prev_valid", None)
        inputs, rows = reg_inputs(self.action_reg, data.observations, prev_obs)  # type: ignore[arg-type]
        out, normalized = actor_pass(inputs)
        loss, values = action_reg_loss(
            self.action_reg,  # type: ignore[arg-type]
            self._reg_actions,
            data.observations,
            prev_obs,
            prev_valid,
            actions=normalized,
        )
        self._log_terms(logs, values)
        return out, rows, loss

    def _store_transition(
        self,
        replay_buffer: Any,
        buffer_action: np.ndarray,
        new_obs: Any,
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)  # type: ignore[misc]
        self._after_env_step(np.asarray(dones, dtype=bool))

    def _after_env_step(self, dones: np.ndarray) -> None:
        """
        Called after SB3 stores each env step's transitions. Overrides call ``super()``.

        :param dones: ``(n_envs,)`` episode ends of the step just stored
        """
