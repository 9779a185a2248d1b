"""The package's layers: light imports where a controller needs them, lazy top level, contracts."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
{code}
heavy = sorted(m for m in ("torch", "stable_baselines3") if m in sys.modules)
print("heavy:", ",".join(heavy) or "none")
"""


def imports_heavy(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE.format(code=code)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "code",
    [
        "import smoothrl.metrics",
        "import smoothrl",
        "import smoothrl.envs.keys, smoothrl.envs.registration, smoothrl.errors",
        "import gymnasium as gym, smoothrl; gym.spec('smoothrl/HVAC-v0')",
    ],
)
def test_light_modules_do_not_import_torch(code: str):
    assert imports_heavy(code) == "heavy: none"


def test_cli_help_does_not_import_torch():
    code = (
        "from smoothrl.cli import main\nsys.argv = ['smoothrl', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert imports_heavy(code) == "heavy: none"


def test_algorithms_load_on_first_use():
    import smoothrl

    assert smoothrl.SPPO.__name__ == "SPPO" and smoothrl.SDQN.__name__ == "SDQN"
    from smoothrl import PPO, SDQN, SPPO  # noqa: F401  (the README's promise)

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        smoothrl.Nope  # noqa: B018


def test_import_contracts_hold():
    """No upward import (import-linter's contracts in pyproject.toml); `make test` runs it too."""
    from importlinter.cli import lint_imports

    assert lint_imports() == 0  # 0: every contract kept
