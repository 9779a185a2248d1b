"""`smoothrl attack` and `smoothrl certify`: JSON output and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smoothrl.cli import app

runner = CliRunner()

# --- CLI -------------------------------------------------------------------------------


def test_cli_attack_and_certify_json(cartpole_ppo: Path):
    result = runner.invoke(app, ["attack", str(cartpole_ppo), "--attack", "fgsm", "--eps", "0.05", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["attack"] == "fgsm" and summary["max_perturbation"] <= 0.05 + 1e-6
    result = runner.invoke(app, ["certify", str(cartpole_ppo), "--samples", "200", "--states", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kind"] == "discrete"
    args = [
        "eval",
        str(cartpole_ppo),
        "--episodes",
        "1",
        "--smoothing-sigma",
        "0.01",
        "--smoothing-samples",
        "5",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["smoothing"] == {"sigma": 0.01, "samples": 5, "mode": "vote"} and summary["mean_return"] == 500.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["certify", "{run}", "--sigma", "0"], "certify: --sigma"),
        (["certify", "{run}", "--samples", "0"], "certify: --samples"),
        (["certify", "{run}", "--alpha", "1.5"], "must be a finite number in (0, 1), got 1.5"),
        (["certify", "{run}", "--bound", "chernoff"], "--bound must be cp or hoeffding"),
        (["attack", "{run}", "--eps", "-0.1"], "--eps must be a finite number in [0, 1e+06]"),
        (["attack", "{run}", "--attack", "min_q"], "PPO has no Q-function for the min_q attack"),
        (["attack", "{run}", "--attack", "nope"], "unknown attack 'nope'"),
        (["attack", "{run}", "--smoothing-sigma", "-1"], "--smoothing-sigma"),
        (["attack", "/nonexistent/run"], "does not exist"),
        (["eval", "{run}", "--smoothing-sigma", "0"], "smoothing: --smoothing-sigma"),
        (["eval", "{run}", "--smoothing-sigma", "0.1", "--smoothing-mode", "median3"], "unknown smoothing mode"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(cartpole_ppo: Path, args: list[str], message: str):
    result = runner.invoke(app, [a.replace("{run}", str(cartpole_ppo)) for a in args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
