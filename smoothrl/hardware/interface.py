"""``HardwareInterface``: a piece of hardware as a lifecycle, as ros2_control models it.

``configure`` (connect, check the channels) -> ``activate`` (start exchanging) -> ``read`` /
``write`` once per period -> ``deactivate``; ``emergency_stop`` writes the safe command at once,
and ``on_error`` is told of any failure of the loop before it stops. A backend implements the
abstract methods; the loop (:mod:`smoothrl.hardware.loop`) drives them and owns the timing and
the limits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Channels:
    """
    What an interface exchanges.

    :param observations: number of observation values ``read`` returns
    :param commands: number of command values ``write`` takes
    :param names: optional channel names, observations first
    """

    observations: int
    commands: int
    names: tuple[str, ...] = ()


class HardwareInterface(ABC):
    """The hardware side of the control loop."""

    #: set by a backend that advances its clock itself (lock-step): the loop does not sleep
    lockstep: bool = False

    @abstractmethod
    def configure(self) -> Channels:
        """
        Connect and describe the channels (no command is written yet).

        :return: the channels
        """

    @abstractmethod
    def activate(self) -> None:
        """Start exchanging observations and commands."""

    @abstractmethod
    def read(self) -> tuple[np.ndarray, float]:
        """
        :return: the newest observation and the time it was taken (``time.monotonic()`` clock)
        """

    @abstractmethod
    def write(self, command: np.ndarray) -> None:
        """
        :param command: the filtered command of this period
        """

    @abstractmethod
    def deactivate(self) -> None:
        """Stop exchanging and release the hardware."""

    def emergency_stop(self, command: np.ndarray) -> None:
        """
        Write the safe command now (the loop calls it when the watchdog fires).

        :param command: the safe command
        """
        self.write(command)

    def on_error(self, error: BaseException) -> None:
        """
        Told of a failure of the loop before it stops (log it, release what is held).

        :param error: what failed
        """
        return None

    @property
    def finished(self) -> bool:
        """Whether the far end has ended the run (a simulated episode's end); hardware never does."""
        return False
