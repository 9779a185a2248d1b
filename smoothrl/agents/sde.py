"""gSDE for deterministic actors (TD3, DDPG): the keywords SB3 gives only PPO, A2C and SAC.

The actor and policy are :class:`~smoothrl.agents.policies.GSDEActor` and
:class:`~smoothrl.agents.policies.GSDETD3Policy` (their docstrings give the noise model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from smoothrl.agents.policies import GSDETD3Policy, add_policy_kwargs


class DeterministicSDE:
    """
    ``use_sde``, ``sde_sample_freq``, ``use_sde_at_warmup`` and ``sde_std`` for TD3 and DDPG
    (SB3 supports gSDE only for PPO, A2C and SAC). Goes before
    :class:`~smoothrl.agents.extensions.OffPolicyExtensions` in the bases, whose env-step hook
    renews each env's noise matrix.

    :param policy: the policy (``"MlpPolicy"`` becomes :class:`GSDETD3Policy` with gSDE)
    :param args: the algorithm's other positional arguments
    :param use_sde: explore with gSDE instead of action noise
    :param sde_sample_freq: redraw each env's noise matrix every this many steps (-1: at episode
        start only)
    :param use_sde_at_warmup: explore with gSDE instead of uniform actions before ``learning_starts``
    :param sde_std: standard deviation of the noise per action (fixed: no entropy objective learns it)
    :param kwargs: the algorithm's keyword arguments
    """

    use_sde: bool
    sde_sample_freq: int
    use_sde_at_warmup: bool

    def __init__(
        self,
        policy: Any,
        *args: Any,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        sde_std: float = 0.1,
        **kwargs: Any,
    ) -> None:
        policy = self._sde_policy(policy, use_sde, sde_std, kwargs)
        super().__init__(policy, *args, **kwargs)  # type: ignore[call-arg]
        self.use_sde, self.sde_sample_freq, self.use_sde_at_warmup = use_sde, sde_sample_freq, use_sde_at_warmup

    @staticmethod
    def _sde_policy(policy: Any, use_sde: bool, sde_std: float, kwargs: dict[str, Any]) -> Any:
        """The policy to build: ``GSDETD3Policy`` for ``"MlpPolicy"`` when gSDE is on."""
        if not use_sde:
            return policy
        if policy not in ("MlpPolicy", GSDETD3Policy):
            raise ValueError(f"use_sde on TD3/DDPG supports policy='MlpPolicy', got {policy!r}")
        add_policy_kwargs(kwargs, sde_std=sde_std)
        return GSDETD3Policy

    def _after_env_step(self, dones: np.ndarray) -> None:
        super()._after_env_step(dones)  # type: ignore[misc]
        if self.use_sde:
            self.actor.step_noise(dones, self.sde_sample_freq)  # type: ignore[attr-defined]
