"""The package's layers: light imports where a controller needs them, lazy top level, contracts."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from smoothrl import __file__ as smoothrl_file

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


PACKAGE = Path(smoothrl_file).parent
#: the library's leaves: everything else lives in a subpackage whose name says what it holds
LEAVES = {"__init__", "errors", "metrics", "checks", "presets", "rundir", "registry"}
MAX_LINES = 500
#: words from the way the project is built, which a user cannot know the meaning of: an issue
#: number, or "session" as a period of work (SB3's own comments cite its GitHub issues: kept)
PROCESS_WORDS = re.compile(
    r"(?<!GH )(?<!/)\bissues? ?#?\d+|\b(?:this|a new|an earlier|earlier|early|next|last|previous|later|other)"
    r" sessions?\b|\bmachines or sessions\b",
    re.IGNORECASE,
)


def test_only_the_leaves_sit_at_the_top_of_the_package():
    assert {p.stem for p in PACKAGE.glob("*.py")} == LEAVES


def test_no_module_is_over_500_lines_without_saying_why():
    long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        doc = ast.get_docstring(ast.parse(text)) or ""
        if len(text.splitlines()) > MAX_LINES and f"over {MAX_LINES} lines" not in doc:
            long.append(str(path.relative_to(PACKAGE)))
    assert long == []


def test_no_process_words_in_the_repository():
    root = PACKAGE.parent
    files = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        path = root / name
        if name == "tests/test_layers.py":  # its own examples
            continue
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ""} or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if PROCESS_WORDS.search(line) and "github.com/DLR-RM/" not in line:  # SB3's own comments
                found.append(f"{name}:{number}: {line.strip()}")
    assert found == []


def test_process_words_are_recognised():
    assert PROCESS_WORDS.search("Issue 16, part 2") and PROCESS_WORDS.search("measured this session")
    assert not PROCESS_WORDS.search("# Copy running stats, see GH issue #996")
    assert not PROCESS_WORDS.search("start_new_session=True; an onnxruntime session")


def test_moved_module_paths_still_import_with_a_warning():
    code = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    from smoothrl.training import evaluate, load_run, train\n"
        "    from smoothrl.config import resolve_config\n"
        "    from smoothrl.sweep import load_sweep\n"
        "import smoothrl.run, smoothrl.run.training, smoothrl.run.overrides\n"
        "assert train is smoothrl.run.training.train and resolve_config is smoothrl.run.overrides.resolve_config\n"
        "assert smoothrl.run.__spec__.name == 'smoothrl.run'\n"
        "print(sorted(str(w.message) for w in caught if w.category is DeprecationWarning))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "smoothrl.training is now smoothrl.run" in out.stdout and "smoothrl.sweep is now" in out.stdout
