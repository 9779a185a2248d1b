"""Environments: id lookup across gymnasium, PyBullet and smoothrl's own ids, and how an id
becomes a VecEnv (:func:`make_vec_env`, in :mod:`smoothrl.envs.factory`).

Importing this package registers every ``smoothrl/*`` id with gymnasium and imports nothing
heavier than gymnasium (no torch, no SB3). PyBullet ids (``HalfCheetahBulletEnv-v0``, ...) come
from ``pybullet_envs_gymnasium``, imported on first use with pybullet's C-level banner kept off
stdout (so ``--json`` output stays clean).
"""

from __future__ import annotations

import contextlib
import ctypes
import difflib
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym

from smoothrl.envs.eplus import register_ids as register_eplus_ids
from smoothrl.envs.hvac import KPI_NAMES, register_ids
from smoothrl.envs.registration import register, with_controllers
from smoothrl.errors import SmoothRLError

register_ids()
register_eplus_ids(KPI_NAMES)
# decision-dependent envs (smoothrl.performative): registered by name, imported on first make
register(
    "smoothrl/PerformativeGridworld-v0",
    "smoothrl.performative.gridworld:PerformativeGridworldEnv",
    max_episode_steps=100,  # the paper's sampling horizon
)
register(
    "smoothrl/PerformativeHVAC-v0",
    "smoothrl.performative.hvac:PerformativeHVACEnv",
    eval_kwargs={"split": "test", "in_order": True},
    splits=("train", "test"),
    kpis=KPI_NAMES,
    controllers=True,
)

#: ids with the HVAC simulator's interface, the registrations the building controllers run on
HVAC_FAMILY = with_controllers()

#: PyBullet locomotion and control tasks smoothrl supports (rl-zoo3 presets exist for them).
BULLET_IDS = (
    "HalfCheetahBulletEnv-v0",
    "AntBulletEnv-v0",
    "HopperBulletEnv-v0",
    "Walker2DBulletEnv-v0",
    "ReacherBulletEnv-v0",
    "InvertedPendulumSwingupBulletEnv-v0",
)

#: gymnasium's classic-control tasks.
CLASSIC_CONTROL_IDS = (
    "Pendulum-v1",
    "CartPole-v1",
    "MountainCarContinuous-v0",
    "MountainCar-v0",
    "Acrobot-v1",
)


_LIBC = ctypes.CDLL(None)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 (including output of C extensions such as pybullet) to /dev/null."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (some embedded runners): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        sys.stdout.flush()
        _LIBC.fflush(None)  # C stdio buffers (pybullet's printf) must empty into /dev/null, not later
        os.dup2(saved, 1)
        os.close(saved)


def _import_bullet() -> None:
    if "pybullet_envs_gymnasium" not in sys.modules:
        with quiet_stdout():
            import pybullet_envs_gymnasium  # noqa: F401  (registers the *BulletEnv-v0 ids)


def is_bullet(env_id: str) -> bool:
    """
    :param env_id: a gymnasium id
    :return: whether it is a PyBullet task (whose constructor prints to C-level stdout)
    """
    return "Bullet" in env_id


def check_env_id(env_id: str) -> None:
    """
    Make sure ``env_id`` is registered, importing the package that provides it.

    :param env_id: a gymnasium id
    :raises SmoothRLError: for an unknown id, with the closest known ids
    """
    if is_bullet(env_id):
        _import_bullet()
    if env_id in gym.registry:
        return
    _import_bullet()
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise SmoothRLError(f"unknown environment id '{env_id}'; {hint}run `smoothrl list` for the available ids")


class QuietReset(gym.Wrapper):
    """
    Run ``reset`` with C-level stdout silenced: PyBullet envs connect to the physics server on
    their first reset and print ``argv[0]=`` there.

    :param env: the environment
    """

    def reset(self, **kwargs):  # type: ignore[override]
        with quiet_stdout():
            return self.env.reset(**kwargs)


def make_base_env(env_id: str, **kwargs) -> gym.Env:
    """
    ``gymnasium.make`` for any supported id, with PyBullet's stdout output silenced.

    :param env_id: a gymnasium id
    :param kwargs: passed to ``gymnasium.make``
    :return: the environment
    """
    check_env_id(env_id)
    if is_bullet(env_id):
        with quiet_stdout():
            return QuietReset(gym.make(env_id, **kwargs))
    return gym.make(env_id, **kwargs)


def observation_channels(env: gym.Env) -> list[tuple[str, str]]:
    """
    Name and unit of each observation value, where the env says (the HVAC simulator's
    ``obs_names`` and ``obs_units``); else ``obs_0, obs_1, ...`` with no unit.

    :param env: an env
    :return: ``(name, unit)`` per value of the flat observation
    """
    sim = getattr(env.unwrapped, "sim", None)
    names, units = getattr(sim, "obs_names", None), getattr(sim, "obs_units", None)
    if names is not None and units is not None:
        return list(zip(names, units, strict=True))
    size = math.prod(env.observation_space.shape or (0,))
    return [(f"obs_{i}", "") for i in range(size)]


def control_period(env: gym.Env) -> float | None:
    """
    Seconds per step of an env, where it says: ``dt`` (MuJoCo-style and classic control),
    ``tau`` (CartPole), the PyBullet scene's ``dt`` (known after the first reset), or the HVAC
    simulator's step.

    :param env: a (reset) env
    :return: the period, or ``None`` when the env does not say
    """
    unwrapped = env.unwrapped
    for value in (
        getattr(unwrapped, "dt", None),
        getattr(unwrapped, "tau", None),
        getattr(getattr(unwrapped, "scene", None), "dt", None),
    ):
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    sim = getattr(unwrapped, "sim", None)
    if sim is not None and hasattr(sim, "dt_h"):
        return float(sim.dt_h) * 3600.0
    return None


def list_env_ids() -> dict[str, list[str]]:
    """
    The ids smoothrl supports, grouped.

    :return: ``{"smoothrl": [...], "pybullet": [...], "classic control": [...]}``
    """
    return {
        "smoothrl": sorted(k for k in gym.registry if k.startswith("smoothrl/")),
        "pybullet": list(BULLET_IDS),
        "classic control": list(CLASSIC_CONTROL_IDS),
    }


def __getattr__(name: str) -> Any:
    """``smoothrl.envs.make_vec_env`` imports SB3 only when it is used (PEP 562)."""
    if name == "make_vec_env":
        from smoothrl.envs.factory import make_vec_env

        return make_vec_env
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_env_starts(env_id: str, kwargs: dict[str, Any], where: str) -> None:
    """
    Make the env with these keywords and reset it once, as a trial would.

    :param env_id: the env
    :param kwargs: its keywords
    :param where: for the message
    :raises SmoothRLError: naming the failure
    """
    try:
        env = make_base_env(env_id, **kwargs)
        try:
            env.reset(seed=0)
        finally:
            env.close()
    except SmoothRLError as e:
        raise SmoothRLError(f"{where}: {e}") from None
    except Exception as e:  # the env's own error: one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SmoothRLError(
            f"{where}: {env_id} with env_kwargs {kwargs} does not start ({reason}); fix the env keywords"
        ) from None
