"""The pipeline: ``make_env`` -> ``make_model`` -> (distillation) -> ``train`` -> RUN DIR, and
``resume`` from its latest checkpoint. A run directory is written only by this module: fresh
or ``--overwrite`` (the old one set aside until the new one has its first checkpoint), locked
while training, with ``model.zip``, ``vecnormalize.pkl`` and ``eval.json`` as its last files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from smoothrl import rundir
from smoothrl.checks import check_writable
from smoothrl.envs.vec_wrappers import VecObservationNoise
from smoothrl.errors import SmoothRLError, TrainingInterrupted
from smoothrl.run.build import (
    EVAL_SEED_OFFSET,
    Run,
    check_device,
    load_model,
    load_run,
    make_env,
    make_model,
    read_config,
)
from smoothrl.run.callbacks import AtomicCheckpointCallback, SmoothnessCallback, SmoothnessEvalCallback, save_checkpoint
from smoothrl.run.config import RunConfig, one_line
from smoothrl.run.evaluation import evaluate, split_overrides


def _learn(
    model: BaseAlgorithm,
    config: RunConfig,
    run_dir: Path,
    callbacks: list[BaseCallback],
    progress_bar: bool,
    reset: bool,
) -> None:
    try:
        model.learn(
            total_timesteps=config.n_timesteps - (0 if reset else model.num_timesteps),
            callback=CallbackList(callbacks),
            tb_log_name=rundir.TB_RUN_NAME,
            reset_num_timesteps=reset,
            progress_bar=progress_bar,
        )
    except KeyboardInterrupt:
        steps = save_checkpoint(model, run_dir)
        raise TrainingInterrupted(
            f"training interrupted at {steps} steps; checkpoint saved, continue with "
            f"`smoothrl train --resume --run-dir {run_dir}`"
        ) from None


def _training_env(config: RunConfig, vecnormalize_path: str | Path | None = None) -> VecEnv:
    """
    The training env of a run: normalization statistics from a checkpoint (``--resume``), from
    ``config.initial_normalization`` or fresh, frozen when ``config.freeze_normalization``; with
    ``obs_noise`` the observations are noise-augmented.
    """
    env = make_env(config, training=True, vecnormalize_path=vecnormalize_path or config.initial_normalization)
    if config.freeze_normalization and isinstance(env, VecNormalize):
        env.training = False
    if config.obs_noise > 0:
        if isinstance(env, VecNormalize) and config.entry.off_policy:
            env.close()
            # SB3's replay buffers store VecNormalize's original (clean) observations: the noise would be lost
            raise SmoothRLError(
                f"obs_noise with normalize is not supported for off-policy {config.algo}; "
                "use normalize=false or PPO/A2C"
            )
        env = VecObservationNoise(env, config.obs_noise, config.seed)
    return env


def _pretrain(model: BaseAlgorithm, env: VecEnv, config: RunConfig, progress_bar: bool) -> list[dict[str, Any]] | None:
    """Distil the config's teacher into the new model (``config.pretrain``), with a progress bar."""
    if config.pretrain is None:
        return None
    from smoothrl.run.distillation import FrozenStats, distill

    if config.pretrain.from_run is not None:
        rounds = _distilled_in(Path(config.pretrain.from_run), model, env, config)
    else:
        from rich.progress import Progress

        with Progress(transient=True, disable=not progress_bar) as bar:
            task = bar.add_task(f"distilling {config.pretrain.teacher}", total=None)
            rounds = distill(
                model, env, config, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
    normalize = model.get_vec_normalize_env()
    if config.pretrain.keep_normalization and normalize is not None:
        normalize.obs_rms = FrozenStats.of(normalize.obs_rms)
    return rounds


def _distilled_in(source: Path, model: BaseAlgorithm, env: VecEnv, config: RunConfig) -> list[dict[str, Any]]:
    """Take the policy (and normalization statistics) another run distilled, its checkpoint 0."""
    theirs = read_config(source)
    where = f"pretrain.from_run {source}"
    if theirs.pretrain is None or theirs.pretrain.teacher != config.pretrain.teacher:
        raise SmoothRLError(f"{where} was not distilled from {config.pretrain.teacher}; name a run that was")
    same = ("algo", "env", "env_kwargs", "policy", "normalize", "smoothness_reward")
    differ = [key for key in same if getattr(theirs, key) != getattr(config, key)]
    arch = (theirs.hyperparams.get("policy_kwargs") or {}).get("net_arch")
    if arch != (config.hyperparams.get("policy_kwargs") or {}).get("net_arch"):
        differ.append("policy_kwargs.net_arch")
    if differ:
        raise SmoothRLError(f"{where} differs in {', '.join(differ)}; distil with the same settings or drop from_run")
    ckpt = rundir.checkpoint_paths(source, 0)
    if not ckpt.model.is_file():
        raise SmoothRLError(f"{where} has no checkpoint 0 (the distilled policy); name a run trained with pretrain")
    distilled = load_model(config.entry.cls, ckpt.model, device=model.device)
    state = {k: v for k, v in distilled.policy.state_dict().items() if k != "log_std"}  # the new run's own std
    try:
        model.policy.load_state_dict(state, strict=False)
    except RuntimeError:
        raise SmoothRLError(f"{where} has another network than this run; distil with the same policy_kwargs") from None
    normalize = model.get_vec_normalize_env()
    if normalize is not None:
        try:
            stats = VecNormalize.load(str(ckpt.vecnormalize), normalize.venv)
        except Exception as e:
            raise SmoothRLError(f"{where}: cannot read {ckpt.vecnormalize} ({type(e).__name__}); restore it") from None
        # plain statistics: whether fine-tuning keeps them is this run's keep_normalization, not theirs
        normalize.obs_rms, normalize.ret_rms = stats.obs_rms.copy(), stats.ret_rms
    record = source / rundir.PRETRAIN
    rounds = json.loads(record.read_text())["rounds"] if record.is_file() else []
    return [{**r, "from_run": str(source)} for r in rounds]


def train(
    config: RunConfig,
    run_dir: str | Path,
    *,
    overwrite: bool = False,
    progress_bar: bool = True,
    callbacks: list[BaseCallback] | None = None,
) -> Path:
    """
    Train a new run and write its directory (``model.zip``, ``config.yaml``,
    ``vecnormalize.pkl``, ``tb/``, ``checkpoints/``, ``eval.json``).

    :param config: the run config (from :func:`smoothrl.run.overrides.resolve_config`)
    :param run_dir: where to write; must be new or empty unless ``overwrite``
    :param overwrite: replace a run already there
    :param progress_bar: show a progress bar
    :param callbacks: extra SB3 callbacks
    :return: the run directory
    :raises SmoothRLError: for bad input; :class:`TrainingInterrupted` on Ctrl-C (after checkpointing)
    """
    run_dir = check_writable(run_dir, "@run_dir", folder=True)
    target = rundir.RunDir(run_dir)
    existed = run_dir.exists()
    target.check_fresh(overwrite)
    try:
        with target.writing():
            replacing = target.check_fresh(overwrite)  # again, now that no one else writes
            try:
                env = _training_env(config)
                model = make_model(config, env, tensorboard_log=run_dir / rundir.TB)
                pretrained = _pretrain(model, env, config, progress_bar)
            except KeyboardInterrupt:
                kept = f"; the run in {run_dir} is unchanged" if replacing else ""
                raise TrainingInterrupted(
                    f"interrupted while starting, before training began: nothing written{kept}"
                ) from None
            # only now, once the new run is known to build, is the old one set aside; it is removed
            # once the new one has finished, and restored if the new one fails or is interrupted
            try:
                with target.replacing(replacing):
                    rundir.atomic_write_text(run_dir / rundir.CONFIG, config.to_yaml())
                    if pretrained is not None:  # the distilled policy is checkpoint 0: RL starts (or resumes) from it
                        rundir.atomic_write_json(run_dir / rundir.PRETRAIN, {"rounds": pretrained})
                        save_checkpoint(model, run_dir)
                    callbacks = _callbacks(config, run_dir) + list(callbacks or [])
                    _learn(model, config, run_dir, callbacks, progress_bar, reset=True)
                    _finish(model, config, run_dir)
            except (TrainingInterrupted, KeyboardInterrupt):
                if not replacing:
                    raise
                raise TrainingInterrupted(
                    f"training interrupted; the previous run in {run_dir} is restored, the new one discarded"
                ) from None
    finally:
        if not existed and rundir.is_empty_dir(run_dir) and run_dir.is_dir():
            shutil.rmtree(run_dir)  # nothing was written: leave no empty folder behind
    return run_dir


def resume(
    run_dir: str | Path,
    *,
    n_timesteps: int | None = None,
    progress_bar: bool = True,
    callbacks: list[BaseCallback] | None = None,
) -> Path:
    """
    Continue a run from its latest checkpoint with its saved config; steps already done count.

    :param run_dir: the run directory
    :param n_timesteps: a new total budget (to train a finished run further)
    :param progress_bar: show a progress bar
    :param callbacks: extra SB3 callbacks
    :return: the run directory
    :raises SmoothRLError: when there is nothing to resume
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    check_writable(run_dir, "@run_dir", folder=True)
    with rundir.RunDir(run_dir).writing():
        return _resume(run_dir, config, n_timesteps, progress_bar, callbacks)


def _resume(
    run_dir: Path,
    config: RunConfig,
    n_timesteps: int | None,
    progress_bar: bool,
    callbacks: list[BaseCallback] | None,
) -> Path:
    if n_timesteps is not None:
        try:
            config = RunConfig.model_validate({**config.model_dump(), "n_timesteps": n_timesteps})
        except ValidationError as e:
            raise one_line(e, where="@timesteps: ") from None
    ckpt = rundir.latest_checkpoint(run_dir)
    if ckpt is None:
        raise SmoothRLError(f"{run_dir} has no checkpoint to resume from; start it again with @overwrite")
    trained = ckpt.steps >= config.n_timesteps
    saved, evaluated = rundir.RunDir(run_dir).finished(ckpt)
    if trained and evaluated:
        raise SmoothRLError(
            f"{run_dir} is already trained for {ckpt.steps} steps; pass @timesteps with a larger total to continue"
        )
    if trained and saved:  # the final evaluation was interrupted: finish it
        _final_evaluation(load_run(run_dir))
        return run_dir
    vecnormalize = ckpt.vecnormalize if config.normalize_kwargs is not None else None
    if vecnormalize is not None and not vecnormalize.is_file():
        raise SmoothRLError(f"{vecnormalize} is missing, so {ckpt.model.name} cannot be resumed; restore it or retrain")
    check_device(config.device)
    env = _training_env(config, vecnormalize)
    model = load_model(
        config.entry.cls, ckpt.model, env=env, device=config.device, tensorboard_log=str(run_dir / rundir.TB)
    )
    if config.entry.off_policy:
        if not ckpt.replay_buffer.is_file():
            raise SmoothRLError(
                f"{ckpt.model.name} has no replay buffer ({ckpt.replay_buffer.name}), so resuming would start from "
                "an empty buffer; restore the file, or retrain with @overwrite"
            )
        try:
            model.load_replay_buffer(str(ckpt.replay_buffer))  # type: ignore[attr-defined]
        except Exception as e:  # truncated or damaged: resuming on an empty buffer would lose it silently
            raise SmoothRLError(
                f"{ckpt.replay_buffer} is damaged ({type(e).__name__}), so {ckpt.model.name} cannot be resumed with "
                "its replay buffer; restore the file, or retrain with @overwrite"
            ) from None
    rundir.atomic_write_text(run_dir / rundir.CONFIG, config.to_yaml())
    if not trained:  # else: stopped after its last checkpoint, before the final files; write them now
        _learn(model, config, run_dir, _callbacks(config, run_dir) + list(callbacks or []), progress_bar, reset=False)
    return _finish(model, config, run_dir)


def _callbacks(config: RunConfig, run_dir: Path) -> list[BaseCallback]:
    callbacks: list[BaseCallback] = [SmoothnessCallback()]
    if config.checkpoint_freq > 0:
        callbacks.append(AtomicCheckpointCallback(run_dir, config.checkpoint_freq))
    if config.eval_freq > 0:
        eval_env = make_env(
            config,
            n_envs=1,
            training=False,
            seed=config.seed + EVAL_SEED_OFFSET,
            env_overrides=split_overrides(config.env, None),
        )
        callbacks.append(SmoothnessEvalCallback(eval_env, config.eval_freq, config.eval_episodes))
    return callbacks


def _finish(model: BaseAlgorithm, config: RunConfig, run_dir: Path) -> Path:
    try:
        save_checkpoint(model, run_dir)
        vec_normalize = model.get_vec_normalize_env()
        if vec_normalize is not None:
            rundir.atomic_write(run_dir / rundir.VECNORMALIZE, vec_normalize.save)
        rundir.atomic_write(run_dir / rundir.MODEL, model.save)
    except KeyboardInterrupt:  # the checkpoint is complete (atomic writes) or the previous one stands
        raise TrainingInterrupted(
            f"interrupted while saving the trained model; continue with `smoothrl train --resume --run-dir {run_dir}`"
        ) from None
    _final_evaluation(Run(run_dir, config, model))
    model.get_env().close()
    return run_dir


def _final_evaluation(run: Run) -> None:
    """Evaluate a trained run and write ``eval.json``; Ctrl-C leaves the model and says how to finish."""
    try:
        summary, _ = evaluate(run, run.config.eval_episodes)
    except KeyboardInterrupt:
        raise TrainingInterrupted(
            f"interrupted during the final evaluation; the trained model is saved in {run.path}: evaluate it with "
            f"`smoothrl eval {run.path}` or write eval.json with `smoothrl train --resume --run-dir {run.path}`"
        ) from None
    rundir.atomic_write_json(run.path / rundir.EVAL, summary)
