"""Value checks shared by every entry point: one rule for "a finite number in its range".

Every numeric input (a hyperparameter, a CLI option, a hand-edited ``config.yaml``) goes
through :func:`check_number`, so an infinite learning rate, a ``gamma`` of 1.5 or a negative
sample count fail the same way everywhere: one line naming the value, its range and what was
given. The documented ranges of SB3's own keywords are in :data:`RANGES`. Every file or folder a
command will write is checked by :func:`check_writable` before the work starts.

Only the standard library: the controller's runtime uses it too.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoothrl.errors import SmoothRLError

#: the largest seed numpy and torch accept
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Range:
    """
    :param low: smallest allowed value (``None``: unbounded)
    :param high: largest allowed value
    :param low_open: ``low`` itself is not allowed
    :param high_open: ``high`` itself is not allowed
    :param integer: whole numbers only
    :param also: values allowed outside the range (SB3's ``-1`` meaning "as many as collected")
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    also: tuple[float, ...] = ()

    def describe(self) -> str:
        """:return: the range in words, e.g. ``a whole number >= 1`` or ``a number in [0, 1]``"""
        kind = "a whole number" if self.integer else "a finite number"

        def num(a: float) -> str:  # whole-number bounds in full (65535, not 6.5535e+04)
            return f"{int(a)}" if self.integer and float(a).is_integer() and abs(a) < 2**63 else f"{a:g}"

        extra = f" (or {', '.join(num(a) for a in self.also)})" if self.also else ""
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{num(self.low)}, {num(self.high)}{right}{extra}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {num(self.low)}{extra}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {num(self.high)}{extra}"
        return kind + extra

    def holds(self, value: float) -> bool:
        """:return: whether ``value`` is in the range"""
        if value in self.also:
            return True
        if not math.isfinite(value) or (self.integer and not float(value).is_integer()):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


#: the largest perturbation budget or noise level taken (normalized observation units; clip_obs is 10)
MAX_BUDGET = 1e6

POSITIVE = Range(0, None, low_open=True)
NON_NEGATIVE = Range(0)
UNIT = Range(0, 1)
COUNT = Range(1, integer=True)
STEPS = Range(0, integer=True)
BUDGET = Range(0, MAX_BUDGET)
NOISE = Range(0, MAX_BUDGET, low_open=True)
PROBABILITY = Range(0, 1, low_open=True, high_open=True)
PORT = Range(1, 65535, integer=True)
#: a BACnet object or device instance (2^22 - 1 is the wildcard)
INSTANCE = Range(0, 4_194_302, integer=True)
#: a speed-up of simulated time (real-time deployments against a simulated plant)
SPEEDUP = Range(0, 1e6, low_open=True)
#: a duration in seconds, up to a century
DURATION = Range(0, 3.2e9, low_open=True)

#: documented ranges of the algorithms' keywords (SB3's docstrings; smoothrl's own in its classes)
RANGES: dict[str, Range] = {
    "learning_rate": POSITIVE,
    "gamma": UNIT,
    "gae_lambda": UNIT,
    "tau": Range(0, 1, low_open=True),
    "n_steps": COUNT,
    "batch_size": COUNT,
    "n_epochs": COUNT,
    "buffer_size": COUNT,
    "learning_starts": STEPS,
    "gradient_steps": Range(1, integer=True, also=(-1,)),
    "clip_range": POSITIVE,
    "clip_range_vf": POSITIVE,
    "ent_coef": NON_NEGATIVE,
    "vf_coef": NON_NEGATIVE,
    "max_grad_norm": POSITIVE,
    "target_kl": POSITIVE,
    "sde_sample_freq": Range(-1, integer=True),
    "policy_delay": COUNT,
    "target_policy_noise": NON_NEGATIVE,
    "target_noise_clip": NON_NEGATIVE,
    "target_update_interval": COUNT,
    "exploration_fraction": UNIT,
    "exploration_initial_eps": UNIT,
    "exploration_final_eps": UNIT,
    "n_critics": COUNT,
    "rms_prop_eps": POSITIVE,
    "alpha": UNIT,
    "noise_std": NON_NEGATIVE,
    "noise_beta": NON_NEGATIVE,
    "noise_seq_len": COUNT,
    "smoothing_sigma": POSITIVE,
    "smoothing_samples": COUNT,
    "smoothing_samples_eval": COUNT,
    "stats_window_size": COUNT,
    "train_freq": COUNT,
}


def check_number(name: str, value: Any, rule: Range = Range()) -> float:
    """
    :param name: how the user spells it (``gamma``, ``--eps``)
    :param value: the value given
    :param rule: its range
    :return: the value as a float
    :raises SmoothRLError: when it is not a number, not finite, or out of its range
    """
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and rule.holds(float(value))):
        raise SmoothRLError(f"{name} must be {rule.describe()}, got {value!r}")
    return float(value)


def finite_numbers(name: str, value: Any) -> None:
    """
    Every number inside ``value`` (lists, tuples, dicts, nested) must be finite.

    :param name: the keyword, for the message
    :param value: any YAML-like value
    :raises SmoothRLError: naming the first non-finite number
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise SmoothRLError(f"{name} must be finite, got {value!r}")
    if isinstance(value, dict):
        for key, item in value.items():
            finite_numbers(f"{name}.{key}", item)
    elif isinstance(value, list | tuple):
        for item in value:
            finite_numbers(name, item)


def check_seed(name: str, value: int | None) -> None:
    """
    :param name: the option (``--seed``)
    :param value: the seed (``None``: the default)
    :raises SmoothRLError: outside ``[0, 2**32 - 1]`` (what numpy's and torch's generators take)
    """
    if value is not None:
        check_number(name, value, Range(0, MAX_SEED, integer=True))


def check_writable(path: str | Path, option: str, folder: bool = False) -> Path:
    """
    Before any work starts: can ``path`` be created (or written) here? Nothing is created.

    :param path: a file to write, or (``folder``) a folder to create or write into
    :param option: the option that named it (``--out``), for the message
    :param folder: whether ``path`` is a folder
    :return: the path
    :raises SmoothRLError: when a parent is a file, a name is too long for the file system, or
        the nearest existing folder is not writable
    """
    path = Path(path).expanduser()
    target = path.absolute()
    missing: list[str] = []
    probe = target
    while True:
        try:
            if probe.exists():
                break
        except OSError:  # e.g. a name too long to even look up
            pass
        missing.append(probe.name)
        probe = probe.parent
    if missing and not probe.is_dir():
        raise SmoothRLError(
            f"{option} {path}: {probe} is a file, so nothing can be created under it; pass another path"
        )
    if not missing and folder and not probe.is_dir():
        raise SmoothRLError(f"{option} {path} is a file, not a folder; pass another path")
    if not missing and not folder and probe.is_dir():
        raise SmoothRLError(f"{option} {path} is a folder; pass a file name")
    base = probe if probe.is_dir() else probe.parent
    name_max = os.pathconf(base, "PC_NAME_MAX")
    for name in missing:
        if len(os.fsencode(name)) > name_max:
            raise SmoothRLError(
                f"{option}: the name '{name[:40]}...' is longer than {name_max} bytes; use a shorter one"
            )
    if len(os.fsencode(str(target))) >= os.pathconf(base, "PC_PATH_MAX"):
        raise SmoothRLError(f"{option}: the path is longer than this file system allows; use a shorter one")
    if not os.access(base, os.W_OK | os.X_OK):
        raise SmoothRLError(f"{option} {path}: {base} is not writable; pass a folder you can write to")
    return path
