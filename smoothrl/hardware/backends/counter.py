"""A plant's step counter, as building-automation backends use it (Modbus, BACnet): lock-step
waits for it to move past the last command, and an observation is as old as its last change."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class StepCounter:
    """
    Freshness and lock-step from a counter the plant bumps once per step (or a heartbeat).

    :param lockstep: wait, at each read, for the plant to have stepped past the last read
    :param timeout: seconds to wait for that
    :param poll_s: seconds between polls while waiting
    """

    def __init__(self, lockstep: bool, timeout: float, poll_s: float = 0.0005) -> None:
        self.lockstep, self.timeout, self.poll_s = lockstep, timeout, poll_s
        self.last = -1
        self._seen_at: float | None = None

    def wait(self, status: Callable[[], tuple[Any, ...]], finished: Callable[[], bool]) -> tuple[Any, ...]:
        """
        :param status: reads the plant's status: a tuple whose first element is the counter
        :param finished: whether the plant's run has ended (nothing more to wait for)
        :return: the status to read this period (lock-step: the first past the last read)
        :raises TimeoutError: when a lock-step plant does not step within the timeout
        """
        current = status()
        if current[0] < self.last:  # a restarted plant: its counter began again
            self.last = -1
        if self.lockstep:  # wait for the plant to have taken the last command
            deadline = time.monotonic() + self.timeout
            while current[0] <= self.last and not finished():
                if time.monotonic() > deadline:
                    raise TimeoutError("the plant did not step")
                time.sleep(self.poll_s)
                current = status()
        return current

    def stamp(self, step: int) -> float:
        """
        Freshness comes from the plant: the observation is as old as the counter's last change,
        so a frozen plant (values and counter stuck) ages past ``max_age_periods`` although every
        read succeeds. Call once per read, with the counter read.

        :param step: the counter this period
        :return: when the observation was taken (``time.monotonic()`` clock; lock-step: now)
        """
        now = time.monotonic()
        if step != self.last or self._seen_at is None:
            self._seen_at = now  # the plant has moved on (or this is the first read)
        self.last = step
        return now if self.lockstep else self._seen_at
