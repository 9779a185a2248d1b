"""Every mistake is one clear line and exit code 2, and loses nothing.

Each case runs one command with one bad input (a value out of its range, a non-finite number, a
path that cannot be written, a damaged file, a wrong kind of folder, a typer parse error) and
asserts: exit code 2, at most 3 lines of output, no traceback, the expected words, and that no
file of an existing run changed (checksums of every file before and after).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smoothrl.cli import app

runner = CliRunner()
PENDULUM = ["--env", "Pendulum-v1", "--timesteps", "64", "--no-progress"]


def checksums(*folders: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in folders
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def ppo(*sets: str) -> list[str]:
    return ["train", "--algo", "ppo", *PENDULUM, "--run-dir", "{tmp}/new", *[x for s in sets for x in ("--set", s)]]


def sac(*sets: str) -> list[str]:
    return ["train", "--algo", "sac", *PENDULUM, "--run-dir", "{tmp}/new", *[x for s in sets for x in ("--set", s)]]


def dqn(*sets: str) -> list[str]:
    base = ["train", "--algo", "dqn", "--env", "CartPole-v1", "--timesteps", "64", "--no-progress"]
    return [*base, "--run-dir", "{tmp}/new", *[x for s in sets for x in ("--set", s)]]


def td3(*sets: str) -> list[str]:
    return ["train", "--algo", "td3", *PENDULUM, "--run-dir", "{tmp}/new", *[x for s in sets for x in ("--set", s)]]


# -- damaged copies of a run (the originals are never touched) ------------------------------


def _copy(run: Path, tmp: Path, name: str) -> Path:
    return Path(shutil.copytree(run, tmp / name))


def binary_config(runs: dict[str, Path], tmp: Path) -> str:
    run = _copy(runs["sac"], tmp, "binary")
    (run / "config.yaml").write_bytes(bytes(range(256)) * 4)
    return str(run)


def config_for_another_env(runs: dict[str, Path], tmp: Path) -> str:
    run = _copy(runs["sac"], tmp, "edited")
    text = (run / "config.yaml").read_text().replace("env: Pendulum-v1", "env: MountainCarContinuous-v0")
    (run / "config.yaml").write_text(text)
    return str(run)


def config_typo(runs: dict[str, Path], tmp: Path) -> str:
    run = _copy(runs["sac"], tmp, "typo")
    text = (run / "config.yaml").read_text()
    assert "hyperparams:\n" in text
    (run / "config.yaml").write_text(text.replace("hyperparams:\n", "hyperparams:\n  lerning_rate: 0.001\n"))
    return str(run)


def truncated_buffer(runs: dict[str, Path], tmp: Path) -> str:
    run = _copy(runs["sac"], tmp, "truncated")
    for buffer in (run / "checkpoints").glob("*replay_buffer*"):
        buffer.write_bytes(buffer.read_bytes()[:100])
    return str(run)


def truncated_model(runs: dict[str, Path], tmp: Path) -> str:
    run = _copy(runs["sac"], tmp, "model")
    (run / "model.zip").write_bytes((run / "model.zip").read_bytes()[:300])
    return str(run)


def plain_file(runs: dict[str, Path], tmp: Path) -> str:
    (tmp / "notes.txt").write_text("not a run")
    return str(tmp / "notes.txt")


def user_folder(runs: dict[str, Path], tmp: Path) -> str:
    folder = tmp / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    return str(folder)


#: (id, argv with {sac} {ppo} {dqn} {tmp} {file} {setup} placeholders, words the line must hold)
CASES: list[tuple[str, list[str], str]] = [
    # hyperparameter values: finiteness and documented ranges
    ("lr-inf", ppo("learning_rate=inf"), "learning_rate"),
    ("lr-nan", ppo("learning_rate=nan"), "learning_rate"),
    ("lr-negative", ppo("learning_rate=-0.001"), "learning_rate"),
    ("lr-schedule-inf", ppo("learning_rate=lin_inf"), "learning_rate"),
    ("gamma-above-1", ppo("gamma=1.5"), "gamma"),
    ("gamma-negative", sac("gamma=-0.1"), "gamma"),
    ("gae-lambda", ppo("gae_lambda=1.01"), "gae_lambda"),
    ("n-epochs-negative", ppo("n_epochs=-1"), "n_epochs"),
    ("n-steps-zero", ppo("n_steps=0"), "n_steps"),
    ("batch-size-zero", ppo("batch_size=0"), "batch_size"),
    ("clip-range-negative", ppo("clip_range=-0.2"), "clip_range"),
    ("vf-coef-negative", ppo("vf_coef=-1"), "vf_coef"),
    ("max-grad-norm-zero", ppo("max_grad_norm=0"), "max_grad_norm"),
    ("ent-coef-negative", ppo("ent_coef=-0.01"), "ent_coef"),
    ("buffer-size-zero", sac("buffer_size=0"), "buffer_size"),
    ("tau-above-1", sac("tau=2"), "tau"),
    ("learning-starts-negative", sac("learning_starts=-5"), "learning_starts"),
    ("train-freq-zero", sac("train_freq=0"), "train_freq"),
    ("sac-ent-coef-negative", sac("ent_coef=-1"), "ent_coef"),
    ("sde-sample-freq", sac("use_sde=true", "sde_sample_freq=-3"), "sde_sample_freq"),
    ("policy-delay-zero", td3("policy_delay=0"), "policy_delay"),
    ("target-noise-negative", td3("target_policy_noise=-0.1"), "target_policy_noise"),
    ("target-update-zero", dqn("target_update_interval=0"), "target_update_interval"),
    ("exploration-fraction", dqn("exploration_fraction=1.5"), "exploration_fraction"),
    ("exploration-eps", dqn("exploration_final_eps=2"), "exploration_final_eps"),
    ("layer-negative", ppo("policy_kwargs=dict(net_arch=[64, -1])"), "net_arch"),
    ("layer-zero", sac("policy_kwargs=dict(net_arch=[0])"), "net_arch"),
    ("net-arch-text", ppo("policy_kwargs.net_arch=abc"), "net_arch"),
    ("noise-std-negative", td3("noise_type=normal", "noise_std=-1"), "noise_std"),
    ("noise-type-unknown", td3("noise_type=pink"), "noise_type"),
    ("action-reg-order", ppo("action_reg.order=5"), "order"),
    ("smoothness-reward-order", ppo("smoothness_reward.4=0.1"), "smoothness_reward"),
    ("obs-noise-negative", ppo("obs_noise=-1"), "obs_noise"),
    ("eval-episodes-key-zero", ppo("eval_episodes=0"), "eval_episodes"),
    ("typo-key", ppo("lerning_rate=0.001"), "did you mean 'learning_rate'"),
    # run-level options
    ("seed-negative", ["train", "--algo", "ppo", *PENDULUM, "--seed", "-1", "--run-dir", "{tmp}/new"], "seed"),
    ("seed-huge", ["train", "--algo", "ppo", *PENDULUM, "--seed", str(2**32), "--run-dir", "{tmp}/new"], "seed"),
    ("timesteps-zero", ["train", "--algo", "ppo", "--env", "Pendulum-v1", "--timesteps", "0"], "n_timesteps"),
    ("n-envs-zero", ["train", "--algo", "ppo", *PENDULUM, "--n-envs", "0", "--run-dir", "{tmp}/new"], "n_envs"),
    ("device-tpu", ["train", "--algo", "ppo", *PENDULUM, "--device", "tpu", "--run-dir", "{tmp}/new"], "device"),
    ("device-cuda", ["train", "--algo", "ppo", *PENDULUM, "--device", "cuda", "--run-dir", "{tmp}/new"], "CUDA"),
    ("algo-unknown", ["train", "--algo", "ppo2", "--env", "Pendulum-v1"], "ppo2"),
    ("env-unknown", ["train", "--algo", "ppo", "--env", "Pendelum-v1"], "did you mean Pendulum-v1"),
    ("preset-unknown", ["train", "--algo", "ppo", "--env", "Pendulum-v1", "--preset", "nope"], "no preset 'nope'"),
    ("no-algo", ["train", "--env", "Pendulum-v1"], "--algo"),
    ("timesteps-not-a-number", ["train", "--algo", "ppo", "--timesteps", "abc"], "--timesteps"),
    ("unknown-option", ["train", "--algo", "ppo", "--env", "Pendulum-v1", "--steps", "5"], "--steps"),
    ("unknown-command", ["trian"], "trian"),
    # paths the run cannot be written to
    ("run-dir-too-long", ["train", "--algo", "ppo", *PENDULUM, "--run-dir", "{tmp}/" + "x" * 300], "--run-dir"),
    ("run-dir-under-a-file", ["train", "--algo", "ppo", *PENDULUM, "--run-dir", "{file}/run"], "--run-dir"),
    ("run-dir-is-a-file", ["train", "--algo", "ppo", *PENDULUM, "--run-dir", "{file}"], "is a file"),
    (
        "overwrite-user-folder",
        ["train", "--algo", "ppo", *PENDULUM, "--run-dir", "{user}", "--overwrite"],
        "no smoothrl run",
    ),
    ("existing-run", ["train", "--algo", "sac", *PENDULUM, "--run-dir", "{sac}"], "already holds a run"),
    # resume
    ("resume-not-a-run", ["train", "--resume", "--run-dir", "{user}"], "not a smoothrl run"),
    ("resume-plain-file", ["train", "--resume", "--run-dir", "{file}"], "is a file"),
    ("resume-with-set", ["train", "--resume", "--run-dir", "{sac}", "--set", "gamma=0.9"], "drop --set"),
    ("resume-finished", ["train", "--resume", "--run-dir", "{sac}"], "already trained"),
    (
        "resume-truncated-buffer",
        ["train", "--resume", "--run-dir", "{truncated_buffer}", "--timesteps", "900"],
        "replay buffer",
    ),
    ("resume-binary-config", ["train", "--resume", "--run-dir", "{binary_config}"], "config.yaml"),
    ("resume-config-typo", ["train", "--resume", "--run-dir", "{config_typo}", "--timesteps", "900"], "lerning_rate"),
    # eval
    ("eval-seed-negative", ["eval", "{sac}", "--seed", "-1"], "--seed"),
    ("eval-episodes-zero", ["eval", "{sac}", "--episodes", "0"], "--episodes"),
    ("eval-plain-file", ["eval", "{file}"], "is a file"),
    ("eval-missing", ["eval", "{tmp}/nothing"], "does not exist"),
    ("eval-binary-config", ["eval", "{binary_config}"], "config.yaml"),
    ("eval-config-other-env", ["eval", "{config_for_another_env}"], "config.yaml names MountainCarContinuous-v0"),
    (
        "resume-config-other-env",
        ["train", "--resume", "--run-dir", "{config_for_another_env}", "--timesteps", "900"],
        "config.yaml was edited or belongs to another run",
    ),
    ("eval-truncated-model", ["eval", "{truncated_model}"], "model.zip"),
    ("eval-other-spaces", ["eval", "{sac}", "--env", "CartPole-v1"], "same spaces"),
    ("eval-split", ["eval", "{sac}", "--split", "test"], "split"),
    ("eval-controller", ["eval", "--controller", "bangbang", "--env", "smoothrl/HVAC-v0"], "bangbang"),
    ("eval-smoothing-sigma", ["eval", "{sac}", "--smoothing-sigma", "-1"], "sigma"),
    ("eval-smoothing-samples", ["eval", "{sac}", "--smoothing-sigma", "0.1", "--smoothing-samples", "0"], "samples"),
    ("eval-smoothing-mode", ["eval", "{sac}", "--smoothing-sigma", "0.1", "--smoothing-mode", "max"], "mode"),
    # attack
    ("attack-eps-inf", ["attack", "{sac}", "--eps", "inf"], "--eps"),
    ("attack-eps-huge", ["attack", "{sac}", "--eps", "1e308"], "--eps"),
    ("attack-eps-negative", ["attack", "{sac}", "--eps", "-0.1"], "eps"),
    ("attack-eps-nan", ["attack", "{sac}", "--eps", "nan"], "--eps"),
    ("attack-unknown", ["attack", "{sac}", "--attack", "laser"], "laser"),
    ("attack-norm", ["attack", "{sac}", "--norm", "l3"], "norm"),
    ("attack-steps", ["attack", "{sac}", "--steps", "0"], "steps"),
    # certify
    ("certify-eps-nan", ["certify", "{dqn}", "--eps", "nan"], "--eps"),
    ("certify-sigma-inf", ["certify", "{dqn}", "--sigma", "inf"], "--sigma"),
    ("certify-sigma-zero", ["certify", "{dqn}", "--sigma", "0"], "sigma"),
    ("certify-reward-episodes", ["certify", "{dqn}", "--reward-episodes", "-1"], "--reward-episodes"),
    ("certify-samples", ["certify", "{dqn}", "--samples", "0"], "samples"),
    ("certify-alpha", ["certify", "{dqn}", "--alpha", "1.5"], "alpha"),
    ("certify-states", ["certify", "{dqn}", "--states", "0"], "--states"),
    ("certify-bound", ["certify", "{dqn}", "--bound", "bonferroni"], "--bound"),
    # export, plot, list
    ("export-existing-out", ["export", "{sac}", "--out", "{user}"], "exists"),
    ("export-format", ["export", "{sac}", "--out", "{tmp}/art", "--format", "tflite"], "format"),
    ("export-sigma-nan", ["export", "{sac}", "--out", "{tmp}/art", "--smoothing-sigma", "nan"], "sigma"),
    ("export-out-under-a-file", ["export", "{sac}", "--out", "{file}/art"], "--out"),
    ("plot-out-under-a-file", ["plot", "{sac}", "--out", "{file}/plot.png"], "--out"),
    ("plot-missing-run", ["plot", "{tmp}/nothing"], "does not exist"),
    ("list-params", ["list", "--params", "ppo2"], "ppo2"),
]
SETUPS: dict[str, Callable[[dict[str, Path], Path], str]] = {
    f.__name__: f
    for f in (
        binary_config,
        config_for_another_env,
        config_typo,
        truncated_buffer,
        truncated_model,
        plain_file,
        user_folder,
    )
}


@pytest.fixture(scope="module")
def runs(sac_run: Path, ppo_norm_run: Path, cartpole_dqn: Path) -> dict[str, Path]:
    return {"sac": sac_run, "ppo": ppo_norm_run, "dqn": cartpole_dqn}


def test_there_are_enough_cases_and_each_is_named_once():
    names = [name for name, _, _ in CASES]
    assert len(names) >= 60 and len(set(names)) == len(names)


@pytest.mark.parametrize(("name", "argv", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_clear_line_and_changes_nothing(
    name: str, argv: list[str], words: str, runs: dict[str, Path], tmp_path: Path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    values = {key: str(path) for key, path in runs.items()} | {"tmp": str(tmp_path)}
    for key, setup in SETUPS.items():
        if any("{" + key + "}" in a for a in argv):
            values[key] = setup(runs, tmp_path)
    values.setdefault("file", plain_file(runs, tmp_path) if any("{file}" in a for a in argv) else "")
    values.setdefault("user", user_folder(runs, tmp_path) if any("{user}" in a for a in argv) else "")
    args = [a.format(**values) for a in argv]
    protected = [*runs.values(), *(Path(v) for k, v in values.items() if k in SETUPS or k == "user")]
    before = checksums(*[p for p in protected if p.is_dir()])
    result = runner.invoke(app, args)
    output = result.output.strip()
    assert result.exit_code == 2, (result.exit_code, output, result.exception)
    assert "Traceback" not in output and len(output.splitlines()) <= 3, output
    assert words.lower() in output.lower(), output
    assert checksums(*[p for p in protected if p.is_dir()]) == before
    assert not (tmp_path / "new").exists()  # a refused run leaves no folder behind


def test_a_binary_preset_file_is_one_line_naming_the_file(tmp_path: Path):
    from smoothrl.errors import SmoothRLError
    from smoothrl.presets import load_yaml

    binary = tmp_path / "ppo.yaml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(SmoothRLError, match=r"ppo.yaml is not a text file \(not UTF-8\), so not YAML"):
        load_yaml(binary)


@pytest.mark.skipif(
    hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0, reason="root writes anywhere"
)
def test_read_only_folders_are_refused_before_any_work(sac_run: Path, tmp_path: Path):
    """A --run-dir inside a read-only folder, and resuming a read-only run: one line, nothing written."""
    import os
    import stat

    locked = tmp_path / "ro"
    locked.mkdir()
    run = Path(shutil.copytree(sac_run, tmp_path / "run"))
    before = checksums(run)
    try:
        os.chmod(locked, stat.S_IRUSR | stat.S_IXUSR)
        os.chmod(run, stat.S_IRUSR | stat.S_IXUSR)
        args = ["train", "--algo", "ppo", *PENDULUM, "--run-dir", str(locked / "new")]
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "is not writable" in result.output, result.output
        result = runner.invoke(app, ["train", "--resume", "--run-dir", str(run), "--timesteps", "2000"])
        assert result.exit_code == 2 and "is not writable" in result.output, result.output
    finally:
        os.chmod(locked, stat.S_IRWXU)
        os.chmod(run, stat.S_IRWXU)
    assert checksums(run) == before
