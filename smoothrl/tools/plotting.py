"""``smoothrl plot``: learning curves from TensorBoard, action traces and their spectrum; for HVAC
runs, an evaluation week as a building engineer reads it (zone temperature against the comfort
band, outdoor temperature, the heat-pump signal and the price)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from smoothrl import rundir
from smoothrl.errors import SmoothRLError
from smoothrl.metrics import amplitude_spectrum

#: Learning-curve tags drawn, in order of preference.
CURVE_TAGS = ("rollout/ep_rew_mean", "eval/mean_reward")


def read_scalars(run_dir: str | Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """
    One scalar series from a run's TensorBoard logs (all ``tb/run_*`` folders, by step).

    :param run_dir: the run directory
    :param tag: e.g. ``"smoothness/jerk_rms"``
    :return: ``(steps, values)``, empty when the tag was never logged
    """
    return read_scalar_tags(run_dir, (tag,))[tag]


def read_scalar_tags(run_dir: str | Path, tags: Iterable[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """
    Several scalar series from a run's TensorBoard logs, reading its event files once.

    :param run_dir: the run directory
    :param tags: e.g. ``("eval/mean_reward", "smoothness/jerk_rms")``
    :return: tag -> ``(steps, values)`` by step, empty for a tag never logged
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points: dict[str, dict[int, float]] = {tag: {} for tag in tags}
    for folder in sorted((Path(run_dir) / rundir.TB).glob(f"{rundir.TB_RUN_NAME}_*")):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        logged = acc.Tags().get("scalars", [])
        for tag, series in points.items():
            if tag in logged:
                series.update({e.step: e.value for e in acc.Scalars(tag)})
    out = {}
    for tag, series in points.items():
        steps = np.array(sorted(series), dtype=np.int64)
        out[tag] = (steps, np.array([series[s] for s in steps], dtype=np.float64))
    return out


def plot_runs(
    run_dirs: list[str | Path], out: str | Path, seed: int | None = None, controllers: Iterable[str] = ()
) -> Path:
    """
    Draw, for each run, its learning curves and, from one deterministic evaluation episode,
    its action traces (normalized units) and their single-sided amplitude spectrum.

    :param run_dirs: run directories
    :param out: the PNG to write (atomically)
    :param seed: seed of the evaluation episode
    :param controllers: HVAC runs only: controllers that are not learned (e.g. ``mpc-oracle``)
        whose week on the same episode is drawn beside the runs'
    :return: the PNG path
    :raises SmoothRLError: for a bad run directory or output path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from smoothrl.run.build import load_run
    from smoothrl.run.evaluation import evaluate

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise SmoothRLError(f"@out must name a .png file, got {out}")
    runs = [load_run(d) for d in run_dirs]
    from smoothrl.envs.hvac import HVAC_IDS

    controllers = list(controllers)
    if all(run.config.env in HVAC_IDS for run in runs):
        return _plot_hvac_runs(runs, out, seed, controllers)
    if controllers:
        raise SmoothRLError("@controller draws a controller beside HVAC runs only")
    fig, (ax_curve, ax_trace, ax_spec) = plt.subplots(3, 1, figsize=(9, 10))
    for run in runs:
        label = run.path.name
        _curves(ax_curve, run)
        _, episodes = evaluate(run, episodes=1, seed=seed)
        actions = episodes[0].actions
        for j in range(actions.shape[1]):
            ax_trace.plot(actions[:, j], lw=1, label=f"{label} a[{j}]" if actions.shape[1] > 1 else label)
        _spectrum(ax_spec, actions, label)
    ax_curve.set(title="Learning curves", xlabel="environment steps", ylabel="return")
    ax_trace.set(title="Actions of one evaluation episode", xlabel="step", ylabel="action (normalized, 0..1)")
    return _save(fig, (ax_curve, ax_trace, ax_spec), out)


def _spectrum(ax, actions: np.ndarray, label: str) -> None:  # noqa: ANN001  (matplotlib axes)
    """One run's single-sided amplitude spectrum of its actions (mean over dimensions)."""
    f, mag = amplitude_spectrum(actions)
    ax.semilogy(f[1:], np.maximum(mag[1:].mean(axis=1), 1e-12), lw=1, label=label)
    ax.set(
        title="Amplitude spectrum of the actions (mean over dimensions)",
        xlabel="frequency (cycles/step)",
        ylabel="amplitude",
    )


def _curves(ax, run) -> None:  # noqa: ANN001  (matplotlib axes, a loaded run)
    for tag, style in zip(CURVE_TAGS, ("-", "--"), strict=True):
        steps, values = read_scalars(run.path, tag)
        if len(steps):
            ax.plot(steps, values, style, label=f"{run.path.name} {tag}")


def hvac_week(run, seed: int | None = None, controller: str | None = None) -> dict[str, np.ndarray]:  # noqa: ANN001
    """
    One deterministic evaluation episode of an HVAC run (a test week by default), step by step.

    :param run: a loaded HVAC run
    :param seed: seed of the episode (default: the run's evaluation seed)
    :param controller: play the same episode with this controller that is not learned (e.g.
        ``mpc-oracle``, ``pi``) instead of the run's policy
    :return: ``hours`` since the start, ``t_zone`` ``(steps, zones)``, ``comfort_low``,
        ``comfort_high``, ``t_out``, ``price``, ``signal`` ``(steps, zones)`` (the heat pumps'
        delivered signal, -1 cooling .. 1 heating) and ``actions`` (normalized, for the spectrum)
    """
    from smoothrl.envs.keys import ACTION_INFO_KEY
    from smoothrl.run.build import EVAL_SEED_OFFSET
    from smoothrl.run.evaluation import eval_env

    seed = run.config.seed + EVAL_SEED_OFFSET if seed is None else seed
    if controller is None:
        env, policy = eval_env(run, seed), run.model
        sim = env.get_attr("sim")[0]
    else:
        from smoothrl.envs.factory import make_vec_env
        from smoothrl.envs.hvac.control import make_controller
        from smoothrl.envs.registration import eval_env_kwargs

        env = make_vec_env(run.config.env, 1, seed, {**run.config.env_kwargs, **eval_env_kwargs(run.config.env)})
        sim = env.get_attr("sim")[0]
        policy = make_controller(controller, sim, seed=seed)
    rows: dict[str, list] = {k: [] for k in ("t_zone", "comfort_low", "comfort_high", "t_out", "price", "signal")}
    actions = []
    obs = env.reset()
    done = False
    while not done:
        k = int(sim.k[0])
        low, high, price = sim.exo_band[k]
        for key, value in zip(
            rows,
            (sim.t_zone[0].copy(), low, high, sim.exo_inputs[k, 0], price, sim.plant.signal[0].copy()),
            strict=True,
        ):
            rows[key].append(value)
        action, _ = policy.predict(obs, deterministic=True)
        obs, _, dones, infos = env.step(action)
        actions.append(np.asarray(infos[0][ACTION_INFO_KEY], dtype=np.float64))
        done = bool(dones[0])
    env.close()
    out = {key: np.array(values) for key, values in rows.items()}
    out["signal"] = np.vstack([out["signal"][1:], sim.plant.signal[:1]])  # the signal each step delivered
    out["hours"] = np.arange(len(out["t_out"])) * float(sim.dt_h)
    out["actions"] = np.stack(actions)
    return out


def _plot_hvac_runs(runs: list, out: Path, seed: int | None, controllers: list[str]) -> Path:
    """HVAC runs: learning curves, an evaluation week per run and controller (overlaid), and the action spectrum."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(5, 1, figsize=(10, 15))
    ax_curve, ax_temp, ax_signal, ax_price, ax_spec = axes
    ax_out = ax_temp.twinx()
    players = [(run, None) for run in runs] + [(runs[0], name) for name in controllers]
    for i, (run, controller) in enumerate(players):
        label = run.path.name if controller is None else controller
        if controller is None:
            _curves(ax_curve, run)
        week = hvac_week(run, seed, controller)
        hours = week["hours"]
        if i == 0:  # the comfort band and the weather are the week's, the same for every run
            ax_temp.fill_between(
                hours,
                week["comfort_low"],
                week["comfort_high"],
                step="post",
                alpha=0.15,
                color="green",
                label="comfort band",
            )
            ax_out.plot(hours, week["t_out"], color="grey", lw=0.8, alpha=0.7, label="outdoor")
            ax_price.step(hours, week["price"], where="post", color="black", lw=1)
        for z in range(week["t_zone"].shape[1]):
            suffix = f" zone {z}" if week["t_zone"].shape[1] > 1 else ""
            ax_temp.plot(hours, week["t_zone"][:, z], lw=1, label=f"{label}{suffix}")
            ax_signal.step(hours, week["signal"][:, z], where="post", lw=1, label=f"{label}{suffix}")
        _spectrum(ax_spec, week["actions"], label)
    ax_curve.set(title="Learning curves", xlabel="environment steps", ylabel="return")
    ax_temp.set(title="Zone temperature against the comfort band (evaluation week)", xlabel="hours", ylabel="degC")
    ax_out.set_ylabel("outdoor degC")
    ax_out.legend(loc="upper right", fontsize=7)
    ax_signal.set(title="Heat-pump signal (-1 cooling .. 1 heating)", xlabel="hours", ylabel="signal")
    ax_price.set(title="Electricity price", xlabel="hours", ylabel="$/kWh")
    return _save(fig, (ax_curve, ax_temp, ax_signal, ax_price, ax_spec), out)


def _save(fig, axes, out: Path) -> Path:  # noqa: ANN001  (matplotlib objects)
    """Legends and grids on ``axes``, then the PNG written atomically."""
    import matplotlib.pyplot as plt

    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    rundir.atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
    return out


#: the columns every deploy log starts with
DEPLOY_LOG_HEAD = ["period", "utc", "wall_s", "plant_s", "phase"]
#: observation channels that are temperatures in an HVAC deployment, by name
_TEMPERATURE = ("t_zone", "t_out")


def read_deploy_log(path: str | Path) -> dict[str, np.ndarray]:
    """
    A deployment log written by ``smoothrl deploy --log`` (CSV, one row per period; see
    :class:`smoothrl.hardware.loop.DeployLog`). A row cut short (a killed run's ``.partial`` log)
    is left out.

    :param path: the log
    :return: column name -> values (``utc``, ``phase`` and ``estop`` as strings, the rest as floats)
    :raises SmoothRLError: for a missing or foreign file
    """
    import csv

    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        reason = getattr(e, "strerror", None) or "not a readable CSV"
        raise SmoothRLError(f"cannot read deploy log {path}: {reason}; check the path") from None
    if not rows or rows[0][: len(DEPLOY_LOG_HEAD)] != DEPLOY_LOG_HEAD:
        raise SmoothRLError(f"{path} is not a deploy log with at least one period; pass a file from `deploy --log`")
    header, text = rows[0], ("utc", "phase", "estop")
    body = []
    for row in rows[1:]:
        if len(row) != len(header):
            continue  # cut mid-row
        try:
            body.append([v if name in text else float(v) for name, v in zip(header, row, strict=True)])
        except ValueError:
            continue
    if not body:
        raise SmoothRLError(f"{path} is not a deploy log with at least one period; pass a file from `deploy --log`")
    columns = list(zip(*body, strict=True))
    return {
        name: np.array(values) if name in text else np.array(values, dtype=np.float64)
        for name, values in zip(header, columns, strict=True)
    }


def plot_deploy_log(path: str | Path, out: str | Path) -> Path:
    """
    Draw a deployment against the plant's time: what the controller observed (an HVAC
    deployment: zone and outdoor temperatures with occupancy shaded, and the price; a robot: each
    channel), each command (the policy's against the filtered one written), the safety filter's
    interventions with e-stops shaded, and the loop's timing.

    :param path: a deploy log
    :param out: the PNG to write (atomically)
    :return: the PNG path
    :raises SmoothRLError: for a bad log or output path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise SmoothRLError(f"@out must name a .png file, got {out}")
    log = read_deploy_log(path)
    seconds = log["plant_s"]
    hours = seconds.max(initial=0.0) > 3 * 3600
    t = seconds / 3600 if hours else seconds
    unit = "h" if hours else "s"
    observed = [k.removeprefix("obs:") for k in log if k.startswith("obs:")]
    commands = [k.removeprefix("cmd:") for k in log if k.startswith("cmd:")]
    building = any(name.startswith(_TEMPERATURE) for name in observed)
    joints = len(commands) if not building and len(commands) > 1 else 1  # a robot: one panel per joint
    fig, axes = plt.subplots(
        3 + joints, 1, figsize=(10, 10 + 1.2 * joints), gridspec_kw={"height_ratios": [3, *[2] * joints, 1, 1]}
    )
    ax_obs, ax_joints, ax_int, ax_time = axes[0], list(axes[1 : 1 + joints]), axes[-2], axes[-1]
    shown = [n for n in observed if n.startswith(_TEMPERATURE) and "_in_" not in n] if building else observed[:8]
    for name in shown:
        ax_obs.plot(t, log[f"obs:{name}"], lw=1.2 if name.startswith("t_zone") else 0.8, label=name)
    if building and "occupied" in observed:
        occupied = log["obs:occupied"] > 0.5
        ax_obs.fill_between(
            t, 0, 1, where=occupied, transform=ax_obs.get_xaxis_transform(), color="0.9", label="occupied"
        )
    if building and "price" in observed:
        ax_price = ax_obs.twinx()
        ax_price.step(t, log["obs:price"], where="post", color="0.5", lw=0.8, ls=":")
        ax_price.set_ylabel("price ($/kWh)")
    ax_obs.set(
        title="Observed" + (" (zone and outdoor temperature, occupancy shaded)" if building else ""),
        ylabel="degC" if building else "value",
    )
    if not building and len(observed) > len(shown):
        ax_obs.set_title(f"Observed: the first {len(shown)} of {len(observed)} channels")
    for i, name in enumerate(commands):
        ax = ax_joints[i if joints > 1 else 0]
        ax.plot(t, log[f"raw:{name}"], lw=0.8, alpha=0.6, label=f"policy {name}")
        ax.step(t, log[f"cmd:{name}"], where="post", lw=1.2, label=f"written {name}")
        if joints > 1:
            ax.set(title=f"Joint {name}: the policy's command and the filtered one written", ylabel="command")
    if joints == 1:
        ax_joints[0].set(title="Commands: the policy's and the filtered one written", ylabel="command")
    ax_int.step(t, log["interventions"], where="post", label="interventions (cumulative)")
    estop = np.array([bool(x) for x in log["estop"]])
    if estop.any():
        ax_int.fill_between(
            t, 0, 1, where=estop, transform=ax_int.get_xaxis_transform(), color="red", alpha=0.2, label="e-stop"
        )
    ax_int.set(title="Safety filter", ylabel="count")
    ax_time.plot(t, log["period_error_ms"], lw=0.6, label="period error (wake-up minus deadline)")
    ax_time.plot(t, log["inference_ms"], lw=0.6, label="inference")
    ax_time.set(title="Timing", ylabel="ms", xlabel=f"plant time ({unit})")
    for ax in axes:
        ax.set_xlim(t.min(), max(t.max(), t.min() + 1e-9))
        if ax is not ax_time:
            ax.set_xlabel(f"plant time ({unit})")
    return _save(fig, tuple(axes), out)


def plot_performative(runs: dict[str, list[dict[str, float]]], out: str | Path, tolerance: float = 1e-3) -> Path:
    """
    Convergence of performative retraining: the relative occupancy change per round (log scale,
    with the tolerance line) and the performative return (or, without it, the deployment return).

    :param runs: label -> the rounds of one run (``relative_change`` and a return per round)
    :param out: the PNG to write (atomically)
    :param tolerance: drawn as a dashed line
    :return: the PNG's path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_change, ax_return) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rounds in runs.items():
        changed = [(r["round"], r["relative_change"]) for r in rounds if "relative_change" in r]
        if changed:
            x, y = np.array(changed).T
            ax_change.semilogy(x, np.maximum(y, 1e-16), label=label)
        key = "performative_return" if any("performative_return" in r for r in rounds) else "deployment_return"
        points = [(r["round"], r[key]) for r in rounds if key in r]
        if points:
            x, y = np.array(points).T
            ax_return.plot(x, y, label=f"{label} ({key.replace('_', ' ')})")
    ax_change.axhline(tolerance, color="grey", linestyle="--", linewidth=1, label=f"{tolerance:g}")
    ax_change.set(xlabel="round", ylabel="||d_t+1 - d_t|| / ||d_t||", title="relative occupancy change")
    ax_return.set(xlabel="round", ylabel="return", title="return of the deployed policy")
    return _save(fig, (ax_change, ax_return), Path(out))
