"""Export a run directory to a self-contained policy artefact: ``policy.onnx`` + ``manifest.json``.

The graph holds exactly what training saw and what the hardware needs, in order:

1. the observation pipeline: frozen ``VecNormalize`` statistics and ``clip_obs`` (the input is
   the raw observation, with the action history appended when the run was trained with
   ``smoothness_reward``: the runtime keeps that history);
2. the actor's deterministic decision (Gaussian mean / gSDE mean, ``tanh`` of SAC's mean, the
   TD3/DDPG actor, argmax of logits or Q-values), through
   :class:`~smoothrl.robust.views.PolicyView`, the same function attacks and certificates use;
3. randomized smoothing when asked (``smoothing_sigma``, and by default for S-PPO / S-DQN runs):
   the median (continuous) or vote (discrete) over ``m`` copies with a *fixed*, seeded noise
   tensor stored in the graph, so the artefact is deterministic;
4. unscaling to the env's real action bounds and clipping (as SB3's ``predict``); discrete
   policies output the action index.

The ONNX file comes from torch's TorchScript-based exporter (``dynamo=False``): torch >= 2.9's
default exporter fails on SB3 policies (``GuardOnDataDependentSymNode`` in the argument checks
of ``torch.distributions``). ``format="torchscript"`` writes ``policy.pt`` (``torch.jit.trace``)
instead. The runtime (:mod:`smoothrl.hardware`) loads the artefact with onnxruntime alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from smoothrl import __version__
from smoothrl.checks import check_writable
from smoothrl.envs import control_period, observation_channels
from smoothrl.envs.vec_wrappers import VecActionSmoothnessReward
from smoothrl.envs.wrappers import ActionSmoothnessReward, action_bounds
from smoothrl.errors import SmoothRLError
from smoothrl.hardware.manifest import MANIFEST, MANIFEST_VERSION, seal
from smoothrl.metrics import normalize_actions
from smoothrl.robust.smoothing import check_smoothing
from smoothrl.robust.views import PolicyView
from smoothrl.run.build import Run, load_run, make_env
from smoothrl.tools.robustness import certify_run

ONNX_FILE = "policy.onnx"
TORCHSCRIPT_FILE = "policy.pt"
OPSET = 17
ExportFormat = Literal["onnx", "torchscript"]


@dataclass(frozen=True)
class Smoothing:
    """
    Randomized smoothing inside the graph.

    :param sigma: noise standard deviation (normalized observation units)
    :param samples: noisy copies per decision
    :param seed: seed of the fixed noise tensor
    :param mode: ``"median"`` (continuous actions) or ``"vote"`` (discrete)
    """

    sigma: float
    samples: int
    seed: int
    mode: str


class ExportedPolicy(th.nn.Module):
    """
    Raw observation -> action, as one traceable module (see the module docstring).

    :param view: the model's decision
    :param normalization: ``(mean, var, epsilon, clip_obs)`` of the frozen ``VecNormalize``, or ``None``
    :param smoothing: randomized smoothing inside the graph, or ``None``
    """

    def __init__(
        self,
        view: PolicyView,
        normalization: tuple[np.ndarray, np.ndarray, float, float] | None,
        smoothing: Smoothing | None,
    ) -> None:
        super().__init__()
        self.view = view
        self.policy = view.policy  # registers the networks as submodules (their weights go in the graph)
        self.discrete = view.discrete
        self.normalize = normalization is not None
        if normalization is not None:
            mean, var, epsilon, clip = normalization
            # float64, as VecNormalize computes: the policy then sees exactly what it saw in training
            self.register_buffer("obs_mean", th.as_tensor(mean, dtype=th.float64))
            self.register_buffer("obs_std", th.as_tensor(np.sqrt(var + epsilon), dtype=th.float64))
            self.clip_obs = float(clip)
        self.smoothing = smoothing
        if smoothing is not None:
            generator = th.Generator().manual_seed(smoothing.seed)
            noise = th.randn((smoothing.samples, *view.obs_shape), generator=generator)
            self.register_buffer("noise", smoothing.sigma * noise)
        space = view.model.action_space
        if not self.discrete:
            self.register_buffer("low", th.as_tensor(space.low, dtype=th.float32))
            self.register_buffer("high", th.as_tensor(space.high, dtype=th.float32))
            self.squash = bool(view.policy.squash_output)

    def output(self, obs: th.Tensor) -> th.Tensor:
        """
        The base policy's output (:meth:`PolicyView.output`). For actor-critic policies it is
        computed straight from the actor network, the value SB3's ``dist.mode()`` returns (the
        Gaussian or gSDE mean, ``tanh`` of it when squashed; the logits): a smaller graph than
        building the distribution, and the base policy of S-PPO, whose smoothing is bypassed.

        :param obs: ``(batch, *obs_shape)`` normalized observations
        :return: ``(batch, action_dim)`` actions or ``(batch, n_actions)`` scores
        """
        policy = self.policy
        if not isinstance(policy, ActorCriticPolicy):
            return self.view.output(obs)
        features = BasePolicy.extract_features(policy, obs, policy.pi_features_extractor)
        out = policy.action_net(policy.mlp_extractor.forward_actor(features))
        return th.tanh(out) if not self.discrete and policy.squash_output else out

    def decide(self, obs: th.Tensor) -> th.Tensor:
        """
        :param obs: ``(batch, *obs_shape)`` normalized observations
        :return: ``(batch, action_dim)`` actions in the policy's units, or ``(batch,)`` indices
        """
        if self.smoothing is None:
            out = self.output(obs)
            return out.argmax(-1) if self.discrete else out
        m, batch = self.noise.shape[0], obs.shape[0]
        copies = (obs.unsqueeze(0) + self.noise.unsqueeze(1)).reshape(m * batch, *obs.shape[1:])
        out = self.output(copies).reshape(m, batch, -1)
        if self.discrete:  # the vote: the most frequent argmax, ties to the lowest index
            votes = th.nn.functional.one_hot(out.argmax(-1), out.shape[-1]).sum(0)
            return votes.argmax(-1)
        return th.sort(out, dim=0).values[(m - 1) // 2]  # the lower median, as torch.median

    def forward(self, obs: th.Tensor) -> th.Tensor:
        x = obs.float()
        if self.normalize:
            x = th.clamp((x.double() - self.obs_mean) / self.obs_std, -self.clip_obs, self.clip_obs).float()
        decision = self.decide(x)
        if self.discrete:
            return decision.to(th.int64)
        if self.squash:  # SB3's unscale_action: [-1, 1] -> [low, high]
            return self.low + 0.5 * (decision + 1.0) * (self.high - self.low)
        return th.minimum(th.maximum(decision, self.low), self.high)


def _space(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": np.asarray(space.low, dtype=np.float64).ravel().tolist(),
            "high": np.asarray(space.high, dtype=np.float64).ravel().tolist(),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    raise SmoothRLError(f"export supports Box and Discrete spaces, not {space}; retrain on such an env")


def _history(env: VecEnv) -> tuple[int, int] | None:
    """``(k, dim)`` of the action history the env appends to observations, or ``None``."""
    while True:
        if isinstance(env, VecActionSmoothnessReward):
            return env.history.k, env.history.dim
        if isinstance(env, VecNormalize) or hasattr(env, "venv"):
            env = env.venv
            continue
        break
    if hasattr(env, "envs"):
        inner = env.envs[0]
        while isinstance(inner, gym.Wrapper):
            if isinstance(inner, ActionSmoothnessReward):
                return inner.history.k, inner.history.dim
            inner = inner.env
    return None


def _check_history_units(env: VecEnv, env_id: str) -> None:
    """The runtime rebuilds the history from the commands it sends, normalized by the action
    bounds; refuse envs whose ``info["action_unit"]`` is something else (HVAC: the plant signal).

    :param env: the run's evaluation env (reset), stepped here with a few random actions
    :param env_id: its id, for the message
    """
    low, high = action_bounds(env.action_space)
    env.action_space.seed(0)
    for _ in range(3):
        action = np.array([env.action_space.sample()])
        _, _, _, infos = env.step(action)
        sent = np.clip(np.asarray(action, dtype=np.float64).ravel(), low, high)
        expected = normalize_actions(sent[None], low, high)[0]  # one time step, all dimensions
        if not np.allclose(infos[0].get("action_unit", expected), expected, atol=1e-6):
            raise SmoothRLError(
                f"{env_id} reports actions in its own units, which the runtime cannot rebuild, so a run "
                "trained with smoothness_reward cannot be exported yet; retrain with action_reg instead"
            )


#: steps of the policy on its training episodes that measure each channel's range
RANGE_STEPS = 2048


def _training_ranges(module: ExportedPolicy, env: VecEnv, sensors: int, steps: int = RANGE_STEPS) -> np.ndarray:
    """
    The range of every sensor while the exported policy acts on the run's env (training
    episodes, frozen normalization), as the manifest records it.

    :param module: the exported policy (raw observation -> action)
    :param env: the run's env
    :param sensors: how many leading observation values the hardware provides
    :param steps: how many steps to run
    :return: ``(2, sensors)``: lowest and highest value seen
    """
    obs = env.reset()
    low, high = np.full(sensors, np.inf), np.full(sensors, -np.inf)
    for _ in range(steps):
        full = np.asarray(env.get_original_obs() if isinstance(env, VecNormalize) else obs, dtype=np.float32)
        full = full.reshape(1, -1)
        low, high = np.minimum(low, full[0, :sensors]), np.maximum(high, full[0, :sensors])
        with th.no_grad():
            action = module(th.as_tensor(full)).numpy()
        obs, _, _, _ = env.step(action.reshape(1) if module.discrete else action.reshape(1, -1))
    return np.stack([low, high])


#: the bundled weather file's name inside an artefact
WEATHER_FILE = "weather.epw"


def _bundle_exogenous(spec: Any, sim: Any, folder: Path) -> dict[str, Any]:
    """
    Copy what a building controller computes its forecast and price channels from (the run's
    weather file and tariff) into the artefact, so that the runtime needs nothing else.

    :param spec: the HVAC env's spec (``weather``, ``tariff``)
    :param sim: its simulator (the step)
    :param folder: the artefact being written
    :return: the manifest's ``exogenous`` section
    """
    from smoothrl.building.weather import resolve_weather

    target = folder / WEATHER_FILE
    shutil.copyfile(resolve_weather(spec.weather), target)
    return {
        "weather": WEATHER_FILE,
        "weather_sha256": _sha256(target),
        "tariff": spec.tariff.model_dump(mode="json"),
        "step_minutes": round(float(sim.dt_h) * 60),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_policy(
    run: Run, smoothing_sigma: float | None = None, smoothing_samples: int | None = None, seed: int = 0
) -> tuple[ExportedPolicy, VecEnv]:
    """
    The module to export and the run's evaluation env (frozen normalization), for checks.

    :param run: the loaded run
    :param smoothing_sigma: smooth inside the graph with this noise (default: S-PPO / S-DQN's own)
    :param smoothing_samples: noisy copies (default: the agent's test-time copies, else 100)
    :param seed: seed of the noise tensor
    :return: the module and the env
    :raises SmoothRLError: for spaces or options the artefact cannot hold
    """
    model = run.model
    view = PolicyView(model)
    policy = model.policy
    own_sigma = getattr(model, "smoothing_sigma", None)
    sigma = smoothing_sigma if smoothing_sigma is not None else own_sigma
    smoothing = None
    if sigma is not None:
        default_m = getattr(policy, "smoothing_samples_eval", None) or getattr(policy, "smoothing_samples", 100)
        m = smoothing_samples if smoothing_samples is not None else int(default_m)
        check_smoothing(sigma, m, "export")
        smoothing = Smoothing(float(sigma), int(m), int(seed), "vote" if view.discrete else "median")
    elif smoothing_samples is not None:
        raise SmoothRLError("@smoothing_samples needs @smoothing_sigma (or an S-PPO / S-DQN run); add it")
    env = make_env(run.config, n_envs=1, training=False, vecnormalize_path=run.vecnormalize_path, model=run.model)
    normalization = None
    if isinstance(env, VecNormalize) and env.norm_obs:
        if not isinstance(env.obs_rms.mean, np.ndarray):
            raise SmoothRLError("export supports Box observations only (this run normalizes a dict)")
        normalization = (env.obs_rms.mean, env.obs_rms.var, float(env.epsilon), float(env.clip_obs))
    module = ExportedPolicy(view, normalization, smoothing).eval()
    return module, env


def export_run(
    run_dir: str | Path,
    out: str | Path,
    fmt: ExportFormat = "onnx",
    smoothing_sigma: float | None = None,
    smoothing_samples: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    certify: dict[str, Any] | None = None,
) -> Path:
    """
    Write a run's artefact directory (``policy.onnx`` or ``policy.pt``, ``manifest.json``).

    The artefact is written into a temporary folder beside ``out`` and renamed into place, so an
    interrupted export leaves nothing half-written; an existing ``out`` is replaced only with
    ``overwrite``.

    :param run_dir: a finished run directory
    :param out: the artefact directory to create
    :param fmt: ``"onnx"`` (what the runtime loads) or ``"torchscript"``
    :param smoothing_sigma: see :func:`build_policy`
    :param smoothing_samples: see :func:`build_policy`
    :param seed: seed of the smoothing noise tensor
    :param overwrite: replace an existing artefact directory
    :param certify: attach ``smoothrl certify``'s numbers for the artefact's smoothing to the
        manifest: keyword arguments of :func:`smoothrl.tools.robustness.certify_run` (``samples``,
        ``n_states``, ``alpha``, ...); needs smoothing in the graph
    :return: the artefact directory
    :raises SmoothRLError: for bad input, with what to do about it
    """
    out = Path(out)
    if fmt not in ("onnx", "torchscript"):
        raise SmoothRLError(f"@format must be onnx or torchscript, got {fmt!r}")
    check_writable(out, "@out", folder=True)
    if out.exists() and not (overwrite and (out / MANIFEST).is_file()):
        hint = "pass @overwrite to replace it" if (out / MANIFEST).is_file() else "pass a new folder"
        raise SmoothRLError(f"{out} already exists; {hint}")
    run = load_run(run_dir, device="cpu")
    config = run.config
    module, env = build_policy(run, smoothing_sigma, smoothing_samples, seed)
    certificate = None
    if certify is not None:
        if module.smoothing is None:
            env.close()
            raise SmoothRLError("@certify needs smoothing in the graph: pass @smoothing_sigma (or an S-PPO/S-DQN run)")
        options = {"samples": 10_000, "n_states": 100, **certify}
        certificate = certify_run(run, module.smoothing.sigma, **options)
        certificate["note"] = (
            "certificate of the policy smoothed with fresh noise at this sigma; the artefact decides with a "
            "fixed draw of its noisy copies"
        )
    try:
        history = _history(env)
        obs_space = env.observation_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise SmoothRLError(f"export supports flat Box observations, {config.env} has {obs_space}")
        first = env.reset()
        sample = th.as_tensor(env.get_original_obs() if isinstance(env, VecNormalize) else first, dtype=th.float32)
        period = control_period(env.get_attr("unwrapped", [0])[0])  # a PyBullet scene knows it once reset
        if history is not None:
            _check_history_units(env, config.env)
        n_obs = int(obs_space.shape[0])
        sensors = n_obs - (history[0] * history[1] if history else 0)
        unwrapped = env.get_attr("unwrapped", [0])[0]
        names = observation_channels(unwrapped)[:sensors]
        spec = getattr(getattr(unwrapped, "sim", None), "spec", None)
        ranges = _training_ranges(module, env, sensors)
    finally:
        env.close()
    channels = [
        {"name": name, "unit": unit, "low": float(lo), "high": float(hi)}
        for (name, unit), lo, hi in zip(names, ranges[0], ranges[1], strict=True)
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        policy_file = tmp / (ONNX_FILE if fmt == "onnx" else TORCHSCRIPT_FILE)
        sample = sample.reshape(-1, n_obs)
        with th.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
            if fmt == "onnx":
                th.onnx.export(
                    module,
                    (sample,),
                    str(policy_file),
                    dynamo=False,
                    input_names=["observation"],
                    output_names=["action"],
                    dynamic_axes={"observation": {0: "batch"}, "action": {0: "batch"}},
                    opset_version=OPSET,
                )
            else:
                th.jit.trace(module, (sample,), check_trace=False).save(str(policy_file))
        normalization = None
        if module.normalize:
            stats = np.concatenate([module.obs_mean.numpy(), module.obs_std.numpy()]).astype(np.float64)
            normalization = {"clip_obs": module.clip_obs, "sha256": hashlib.sha256(stats.tobytes()).hexdigest()}
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "format": fmt,
            "file": policy_file.name,
            "sha256": _sha256(policy_file),
            "input": {"name": "observation", "dtype": "float32", "size": n_obs},
            "output": {"name": "action", "dtype": "int64" if module.discrete else "float32"},
            "observation_space": {**_space(obs_space), "sensors": sensors, "channels": channels},
            "action_space": _space(run.model.action_space),
            "augmentations": (
                [{"kind": "action_history", "k": history[0], "dim": history[1], "units": "normalized [0, 1]"}]
                if history
                else []
            ),
            "normalization": normalization,
            "smoothing": None if module.smoothing is None else vars(module.smoothing),
            "certificate": certificate,
            "control_period_s": period,
            "source": {
                "run_dir": str(Path(run_dir).resolve()),
                "algo": config.algo,
                "env": config.env,
                "env_kwargs": config.env_kwargs,
                "seed": config.seed,
            },
            "versions": _versions(),
        }
        if spec is not None and hasattr(spec, "weather") and hasattr(spec, "tariff"):
            manifest["exogenous"] = _bundle_exogenous(spec, unwrapped.sim, tmp)
        (tmp / MANIFEST).write_text(json.dumps(seal(manifest), indent=2) + "\n")
        _publish(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """
    Move a finished artefact into place without losing one another export wrote meanwhile: the
    rename fails on a folder that is there (and not empty), and with ``overwrite`` the artefact
    being replaced is set aside first and put back if the new one cannot take its place.

    :param tmp: the finished artefact
    :param out: where it goes
    :param overwrite: replace an artefact already at ``out``
    :raises SmoothRLError: when another export took ``out`` first
    """
    aside = out.with_name(f".{out.name}.replaced-{os.getpid()}")
    if overwrite and (out / MANIFEST).is_file():
        out.rename(aside)
    try:
        tmp.rename(out)
    except OSError:
        if aside.exists() and not out.exists():
            aside.rename(out)
        raise SmoothRLError(f"{out} was written by another export meanwhile; keep it, and pass another @out") from None
    if aside.exists():
        shutil.rmtree(aside)


def _versions() -> dict[str, str]:
    import stable_baselines3

    versions = {"smoothrl": __version__, "torch": th.__version__, "stable_baselines3": stable_baselines3.__version__}
    versions["python"] = platform.python_version()
    versions["onnx_opset"] = str(OPSET)
    return versions
