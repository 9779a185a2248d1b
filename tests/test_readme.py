"""The README's promises: every command it names runs, and its code examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smoothrl.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
MAX_LINES = 300


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def commands() -> list[list[str]]:
    """Every ``smoothrl COMMAND [SUBCOMMAND]`` the README names, without its arguments."""
    found = set()
    for match in re.finditer(r"`smoothrl ([a-z-]+)(?: ([a-z0-9-]+))?", README):
        command, sub = match.groups()
        found.add((command,) if command != "bridge" or sub is None else (command, sub))
    return [list(c) for c in sorted(found)]


def test_the_readme_is_an_entry_point():
    assert len(README.splitlines()) < MAX_LINES


@pytest.mark.parametrize("command", commands(), ids=" ".join)
def test_every_command_the_readme_names_exists(command: list[str]):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output


def test_every_make_target_the_readme_names_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z-]+)", README))
    assert named and named <= targets


def test_every_file_the_readme_links_exists():
    links = re.findall(r"\]\(([^)#]+)\)", README)
    missing = [link for link in links if not link.startswith("http") and not (ROOT / link).exists()]
    assert links and missing == []


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_the_python_examples_run_as_written(index: int, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", blocks("python")[index]], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_deployment_block_runs_as_written(tmp_path: Path):
    """The README's deployment block, pasted into a shell in a folder where `make demo` has run
    (its distilled run stands in as the shipped model of the same recipe)."""
    import json
    import shutil

    block = next(b for b in blocks("bash") if "smoothrl deploy" in b)
    shutil.copytree(ROOT / "models" / "hvac-v0-ppo-mpc", tmp_path / "runs" / "demo" / "distilled")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    script = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + block
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(next(line for line in done.stdout.splitlines() if '"stopped_by"' in line))  # deploy's JSON
    assert summary["stopped_by"] == "episode end" and summary["periods"] == 672 and summary["estop"] is None
    first_week = json.loads((ROOT / "models" / "hvac-v0-ppo-mpc" / "eval.json").read_text())["episode_returns"][0]
    assert summary["plant"]["return"] == pytest.approx(first_week, abs=0.01)  # the model's first test week
    assert (tmp_path / "deploy.png").read_bytes()[:4] == b"\x89PNG"
