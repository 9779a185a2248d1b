"""Hardware calls with a deadline: what keeps a slow or hung gateway from holding the loop.

In real time every call of the interface runs on one worker thread (calls to one interface stay
in order, as a single Modbus or UDP connection needs) and the loop waits for it only up to a
deadline inside the period. A read that has not answered stays pending and its answer is taken
the next period (:class:`Late` meanwhile); a write that has not answered keeps later calls out;
the safe action is never refused: it is queued behind a late call and goes out the moment the
hardware answers again (once: never a second copy while the first is on its way). In lock-step,
or with ``direct``, the interface is called in the loop's thread.

Only the standard library: it loads on the controller.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import numpy as np

from smoothrl.hardware.interface import HardwareInterface


class Late(Exception):
    """The hardware has not answered within the period (the call goes on in the background)."""


class DeadlineIO:
    """
    An interface's ``read``, ``write`` and ``emergency_stop``, each with a deadline.

    :param interface: the hardware
    :param direct: call the interface in the caller's thread (lock-step, or for comparison)
    """

    def __init__(self, interface: HardwareInterface, direct: bool = False) -> None:
        self.interface = interface
        self.direct = direct
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hardware-io")
        self._pending: Future | None = None  # the last call submitted
        self._read: Future | None = None  # a read still on its way
        self._safe: Future | None = None  # a safe write queued behind a call that has not returned

    @property
    def _synchronous(self) -> bool:
        return self.direct or self.interface.lockstep  # lock-step: the far end sets the pace, nothing to overtake

    def _busy(self) -> bool:
        return self._pending is not None and not self._pending.done()

    @staticmethod
    def _result(future: Future, budget: float) -> Any:
        try:
            return future.result(timeout=max(0.0, budget))
        except FutureTimeout:
            raise Late(f"no answer within {budget * 1000:.0f} ms") from None

    def read(self, budget: float) -> tuple[np.ndarray, float]:
        """
        :param budget: seconds to wait
        :return: the interface's observation and its timestamp
        :raises Late: no answer this period (a read still on its way is taken next time)
        :raises Exception: what the read raised
        """
        if self._synchronous:
            return self.interface.read()
        if self._read is None:
            if self._busy():
                raise Late("the hardware has not answered an earlier call")
            self._read = self._pending = self._worker.submit(self.interface.read)
        try:
            return self._result(self._read, budget)
        finally:
            if self._read.done():
                self._read = None  # answered (or failed): the next period asks again

    def write(self, command: np.ndarray, budget: float) -> None:
        """
        :param command: the period's command
        :param budget: seconds to wait
        :raises Late: not written in time, or the hardware is still busy with an earlier call
        :raises Exception: what the write raised
        """
        if self._synchronous:
            self.interface.write(command)
            return
        if self._busy():
            raise Late("the hardware has not answered an earlier call")
        self._pending = self._worker.submit(self.interface.write, command)
        self._result(self._pending, budget)

    def write_safe(self, command: np.ndarray, budget: float) -> None:
        """
        :param command: the safe command
        :param budget: seconds to wait for it here
        :raises Late: while it is on its way behind a late call
        :raises Exception: what the hardware raised
        """
        if self._synchronous:
            self.interface.emergency_stop(command)
            return
        if self._safe is None or self._safe.done():
            self._safe = self._pending = self._worker.submit(self.interface.emergency_stop, command)
        self._result(self._safe, budget)

    def close(self) -> None:
        """Stop the worker (a call in flight finishes on its own; nothing queued starts)."""
        self._worker.shutdown(wait=False, cancel_futures=True)
