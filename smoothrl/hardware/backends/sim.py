"""The ``sim`` backend: a gymnasium / smoothrl env in its own process, as the far end.

Lock-step (hardware-in-the-loop): each ``write`` steps the env once with the command, and the
next ``read`` returns the resulting observation; the run ends with the episode. Real time: the
env steps every ``control_period_s / speedup`` seconds of the wall clock with the latest
command it has received (holding it when none arrives), whatever the loop does; a finished
episode starts the next one. Observations carry the ``time.monotonic()`` stamp of the step that
made them, so the loop's watchdog sees their age.

The env process runs on the development machine (it imports gymnasium and the env's own
packages); the loop's side of the pipe needs nothing but the standard library and numpy.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.interface import Channels, HardwareInterface


def _serve(conn: Connection, env_id: str, env_kwargs: dict[str, Any], seed: int, lockstep: bool, dt: float) -> None:
    """The env process: answers ``read``, ``write`` and ``close`` messages."""
    import smoothrl.envs  # noqa: F401  (registers the smoothrl/* ids)
    from smoothrl.envs import make_base_env

    env = make_base_env(env_id, **env_kwargs)
    obs, _ = env.reset(seed=seed)
    stamp = time.monotonic()
    command: np.ndarray | None = None
    discrete = env.action_space.__class__.__name__ == "Discrete"
    episode_return, returns, finished = 0.0, [], False
    kind = env.action_space.__class__.__name__
    conn.send(("ready", env.observation_space.shape, getattr(env.action_space, "shape", ()), kind))

    def step(action: np.ndarray) -> None:
        nonlocal obs, stamp, episode_return, finished
        if discrete:
            action = int(np.asarray(action).ravel()[0])
        obs, reward, terminated, truncated, _ = env.step(action)
        stamp = time.monotonic()
        episode_return += float(reward)
        if terminated or truncated:
            returns.append(episode_return)
            episode_return = 0.0
            if lockstep:
                finished = True
            else:
                obs, _ = env.reset()

    next_step = time.monotonic() + dt
    try:
        while True:
            timeout = None if lockstep else max(0.0, next_step - time.monotonic())
            if conn.poll(timeout):
                message = conn.recv()
                if message[0] == "read":
                    conn.send((np.asarray(obs, dtype=np.float64), stamp, finished))
                elif message[0] == "write":
                    command = np.asarray(message[1])
                    if lockstep and not finished:
                        step(command)
                elif message[0] == "close":
                    conn.send(("returns", returns, episode_return))
                    return
            if not lockstep and time.monotonic() >= next_step:
                if command is not None:
                    step(command)
                next_step += dt
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    finally:
        env.close()


class SimInterface(HardwareInterface):
    """
    An env in its own process behind the :class:`HardwareInterface` lifecycle.

    :param settings: the profile's ``sim`` section (``env``, ``env_kwargs``, ``seed``, ``lockstep``)
    :param period: the control period (one env step)
    :param lockstep: override ``settings["lockstep"]``
    :param speedup: real time only: step the env this many times faster than the wall clock
    """

    def __init__(
        self, settings: dict[str, Any], period: float, lockstep: bool | None = None, speedup: float = 1.0
    ) -> None:
        if speedup <= 0:
            raise SmoothRLError(f"@speedup must be positive, got {speedup}")
        self.settings = settings
        self.lockstep = bool(settings.get("lockstep", False) if lockstep is None else lockstep)
        self.period = period
        self.speedup = speedup
        self.returns: list[float] = []
        self.partial_return = 0.0
        self._finished = False
        self._process: mp.Process | None = None
        self._conn: Connection | None = None

    def configure(self) -> Channels:
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve,
            args=(
                theirs,
                self.settings["env"],
                dict(self.settings.get("env_kwargs") or {}),
                int(self.settings.get("seed", 0)),
                self.lockstep,
                self.period / self.speedup,
            ),
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._conn = ours
        if not ours.poll(120):
            raise SmoothRLError(f"the sim process for {self.settings['env']} did not start; check sim.env")
        try:
            ready = ours.recv()
        except EOFError:
            raise SmoothRLError(f"the sim process could not make {self.settings['env']}; check sim.env") from None
        _, obs_shape, action_shape, kind = ready
        commands = 1 if kind == "Discrete" else int(np.prod(action_shape))
        return Channels(int(np.prod(obs_shape)), commands)

    def activate(self) -> None:
        """The env process is already stepping (real time) or waiting for the first command."""

    def _ask(self, message: tuple) -> Any:
        if self._conn is None:
            raise RuntimeError("the sim interface is not configured")
        self._conn.send(message)
        if not self._conn.poll(max(1.0, 20 * self.period)):
            raise TimeoutError("the sim process did not answer")
        return self._conn.recv()

    def read(self) -> tuple[np.ndarray, float]:
        obs, stamp, finished = self._ask(("read",))
        self._finished = finished
        return obs, stamp

    def write(self, command: np.ndarray) -> None:
        if self._conn is None:
            raise RuntimeError("the sim interface is not configured")
        self._conn.send(("write", np.asarray(command)))

    @property
    def finished(self) -> bool:
        return self._finished

    def deactivate(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(EOFError, BrokenPipeError, OSError, TimeoutError):  # the far end is gone
                _, self.returns, self.partial_return = self._ask(("close",))
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
            self._process = None
