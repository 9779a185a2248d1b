"""Colored (power-law) action noise, correct with parallel envs.

``ColoredActionNoise(beta)`` is Gaussian noise whose power spectrum falls as ``1/f^beta``:
``beta = 0`` white, ``1`` pink, ``2`` red (Brownian). Pink noise explores more smoothly than
white noise and more broadly than red (Eberhard et al., "Pink Noise Is All You Need", ICLR
2023). The sequences come from ``colorednoise.powerlaw_psd_gaussian`` (Timmer & Koenig).

With several envs, :class:`VectorizedColoredActionNoise` gives each env its own generator
(SB3's ``VectorizedActionNoise`` deep-copies one noise, so every env would replay the same
sequence), and SB3 resets an env's noise when that env's episode ends, so every episode
starts a fresh sequence. The noise is only drawn by ``collect_rollouts``: gradient updates
never consume it.
"""

from __future__ import annotations

import numpy as np
from colorednoise import powerlaw_psd_gaussian
from stable_baselines3.common.noise import ActionNoise, VectorizedActionNoise


class ColoredActionNoise(ActionNoise):
    """
    Gaussian action noise with a ``1/f^beta`` power spectrum, drawn as sequences of ``seq_len`` steps.

    :param beta: spectral exponent (0 white, 1 pink, 2 red)
    :param sigma: standard deviation per action dimension (or one for all)
    :param seq_len: steps per generated sequence (use at least the episode length: the
        spectrum is only colored within a sequence); a new one starts when it runs out
    :param n_actions: action dimensions
    :param seed: seed of this noise's own generator
    """

    def __init__(
        self,
        beta: float,
        sigma: float | np.ndarray,
        seq_len: int,
        n_actions: int,
        seed: int | np.random.SeedSequence | None = None,
    ) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {seq_len}")
        super().__init__()
        self.beta, self.seq_len, self.n_actions = float(beta), int(seq_len), int(n_actions)
        self.sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (self.n_actions,)).copy()
        self.reseed(seed)

    def reseed(self, seed: int | np.random.SeedSequence | None) -> None:
        """
        Start a new generator and a new sequence.

        :param seed: the generator's seed
        """
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Draw a new sequence (called by SB3 at the end of this env's episode)."""
        self._seq = powerlaw_psd_gaussian(self.beta, (self.n_actions, self.seq_len), random_state=self._rng)
        self._t = 0

    def __call__(self) -> np.ndarray:
        if self._t >= self.seq_len:
            self.reset()
        sample = self.sigma * self._seq[:, self._t]
        self._t += 1
        return sample

    def __repr__(self) -> str:
        return f"ColoredActionNoise(beta={self.beta}, sigma={self.sigma}, seq_len={self.seq_len})"


class VectorizedColoredActionNoise(VectorizedActionNoise):
    """
    One :class:`ColoredActionNoise` per env, each with its own generator (seeds spawned from one
    ``SeedSequence``); ``reset(indices)`` renews only the given envs' sequences.

    :param base_noise: the noise to copy for every env
    :param n_envs: number of envs
    :param seed: root seed
    """

    def __init__(self, base_noise: ColoredActionNoise, n_envs: int, seed: int | None = None) -> None:
        super().__init__(base_noise, n_envs)
        for noise, child in zip(self.noises, np.random.SeedSequence(seed).spawn(n_envs), strict=True):
            noise.reseed(child)
