"""``smoothrl export``, ``smoothrl deploy`` and ``smoothrl bridge``: a run on a plant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from smoothrl.cli.app import app, console, reported, user_errors
from smoothrl.cli.tables import fmt
from smoothrl.errors import SmoothRLError


@app.command()
@user_errors
@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `smoothrl train`.")],
    out: Annotated[Path, typer.Option(help="The artefact directory to write.")],
    format_: Annotated[str, typer.Option("--format", help="onnx (what `deploy` loads) or torchscript.")] = "onnx",
    smoothing_sigma: Annotated[
        float | None, typer.Option(help="Put randomized smoothing at this noise in the graph (default: S-PPO/S-DQN's).")
    ] = None,
    smoothing_samples: Annotated[int | None, typer.Option(help="Noisy copies per smoothed decision.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the graph's fixed smoothing noise.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an artefact already in --out.")] = False,
    certify: Annotated[bool, typer.Option(help="Attach `smoothrl certify` numbers for the graph's smoothing.")] = False,
    certify_samples: Annotated[int, typer.Option(help="With --certify: noise samples per state.")] = 10_000,
    certify_states: Annotated[int, typer.Option(help="With --certify: states to certify.")] = 100,
) -> None:
    """Export a run to a self-contained policy artefact (policy.onnx + manifest.json) for `smoothrl deploy`."""
    from smoothrl.checks import COUNT, check_number, check_seed
    from smoothrl.tools.export import export_run

    check_seed("--seed", seed)
    check_number("--certify-samples", certify_samples, COUNT)
    check_number("--certify-states", certify_states, COUNT)
    options = {"samples": certify_samples, "n_states": certify_states} if certify else None
    path = export_run(run_dir, out, format_, smoothing_sigma, smoothing_samples, seed, overwrite, options)  # type: ignore[arg-type]
    manifest = json.loads((path / "manifest.json").read_text())
    smoothing = manifest["smoothing"]
    extra = f", smoothing sigma {smoothing['sigma']} x {smoothing['samples']}" if smoothing else ""
    typer.echo(
        f"wrote {path}/{manifest['file']} and manifest.json ({manifest['source']['algo']} on "
        f"{manifest['source']['env']}{extra})"
    )


@app.command()
@user_errors
def deploy(
    artefact: Annotated[Path, typer.Argument(help="An artefact directory written by `smoothrl export`.")],
    hardware: Annotated[str, typer.Option(help="Controller profile: hardware/NAME.yaml or a shipped NAME.")],
    duration: Annotated[float | None, typer.Option(help="Seconds to run (lock-step: simulated seconds).")] = None,
    lockstep: Annotated[
        bool | None, typer.Option("--lockstep/--realtime", help="Sim backend: step per command, or in real time.")
    ] = None,
    speedup: Annotated[float, typer.Option(help="Real-time sim: run this many times faster than the clock.")] = 1.0,
    log: Annotated[Path | None, typer.Option(help="Write a per-period CSV log here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Run an artefact on hardware (or its simulator) at the profile's rate, behind the safety filter."""
    from smoothrl.hardware.deploy import FAULT_EXIT
    from smoothrl.hardware.deploy import deploy as run_deploy

    summary = run_deploy(artefact, hardware, duration, lockstep, speedup, log, status=None if as_json else console)
    interrupted = summary["stopped_by"] == "interrupt"  # Ctrl-C: the safe action was written, then deactivated
    saved = f"; the log is complete in {log}" if log is not None else ""
    if interrupted:
        reported.interrupt = True
        typer.echo(f"interrupted: the safe action was written and the hardware deactivated{saved}", err=True)
    fault = summary["estop"] if not interrupted else None
    if as_json:
        typer.echo(json.dumps(summary))
    if fault:
        typer.echo(f"error: the run ended on an emergency stop ({fault}); the safe action was written{saved}", err=True)
        raise typer.Exit(FAULT_EXIT)
    if as_json or interrupted:
        raise typer.Exit(130 if interrupted else 0)
    table = Table(title=f"deploy: {artefact} on {summary['profile']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key not in ("profile", "interventions", "plant"):
            table.add_row(key, fmt(value))
    for key, value in summary["interventions"].items():
        table.add_row(f"interventions: {key}", str(value))
    for key, value in (summary.get("plant") or {}).items():  # what the plant reported
        table.add_row(f"plant: {key}", fmt(value))
    console.print(table)


bridge_app = typer.Typer(
    help="Far ends for `smoothrl deploy` to talk to (robots, plants), on loopback by default.", no_args_is_help=True
)
app.add_typer(bridge_app, name="bridge")


#: options the bridges share
PresetOption = Annotated[str | None, typer.Option(help="HVAC preset (envs/NAME.yaml; default: the env's).")]
HvacEnvOption = Annotated[
    str, typer.Option(help="HVAC id: smoothrl/HVAC-v0, smoothrl/HVACMultiZone-v0 or smoothrl/EPlus-v0.")
]
HostOption = Annotated[str, typer.Option(help="Address to bind (loopback unless you mean it).")]
LockstepOption = Annotated[bool, typer.Option("--lockstep/--realtime", help="Step per command, or in real time.")]
SpeedupOption = Annotated[float, typer.Option(help="Real time: simulated time runs this many times faster.")]
SplitOption = Annotated[str, typer.Option(help="test (evaluation weeks) or train.")]


@bridge_app.command("pybullet")
@user_errors
def bridge_pybullet(
    env: Annotated[str, typer.Option(help="The robot: a PyBullet id (any gymnasium / smoothrl id works).")],
    port: Annotated[int, typer.Option(help="UDP port to listen on.")] = 5555,
    host: HostOption = "127.0.0.1",
    lockstep: LockstepOption = True,
    seed: Annotated[int, typer.Option(help="Seed of the first episode.")] = 10_000,
    episodes: Annotated[int | None, typer.Option(help="Stop after this many episodes (default: never).")] = None,
) -> None:
    """Run a robot env as the far end of the udp backend (protocol: smoothrl.hardware.backends.udp)."""
    from smoothrl.checks import COUNT, PORT, check_number, check_seed
    from smoothrl.envs import check_env_id
    from smoothrl.hardware.backends.udp import serve_env

    check_number("--port", port, PORT)
    check_seed("--seed", seed)
    if episodes is not None:
        check_number("--episodes", episodes, COUNT)
    check_env_id(env)
    typer.echo(f"bridge: {env} on udp://{host}:{port} ({'lock-step' if lockstep else 'real time'}); Ctrl-C stops")
    try:
        returns = serve_env(env, port, host, lockstep, seed, episodes=episodes)
    except OSError as e:
        raise SmoothRLError(f"cannot listen on udp://{host}:{port}: {e.strerror}; pick another --port") from None
    typer.echo(json.dumps({"episode_returns": returns}))


@bridge_app.command("modbus-hvac")
@user_errors
def bridge_modbus_hvac(
    preset: PresetOption = None,
    env: HvacEnvOption = "smoothrl/HVAC-v0",
    port: Annotated[int, typer.Option(help="Modbus TCP port.")] = 5020,
    host: HostOption = "127.0.0.1",
    lockstep: LockstepOption = True,
    speedup: SpeedupOption = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the episode's start day.")] = 10_000,
    split: SplitOption = "test",
) -> None:
    """Run the HVAC simulator behind a Modbus TCP server, as the plant of the modbus backend."""
    from smoothrl.hardware.backends.hvac_plant import HVACPlantServer

    _check_plant_options(env, port, speedup, seed, split)
    plant = HVACPlantServer(preset, port, host, lockstep, speedup, seed, split, env)
    typer.echo(f"plant: {env} on modbus://{host}:{port} ({'lock-step' if lockstep else f'real time x{speedup:g}'})")
    typer.echo(json.dumps(plant.register_map()))
    stop = __import__("threading").Event()
    try:
        result = plant.serve(stop)
    except KeyboardInterrupt:
        result = {"steps": plant.steps, "episode_return": plant.episode_return, "kpis": plant.kpis}
    typer.echo(json.dumps(result))


def _check_plant_options(env: str, port: int, speedup: float, seed: int, split: str) -> None:
    """The options every HVAC bridge shares, checked before the simulator starts."""
    from smoothrl.checks import PORT, SPEEDUP, check_number, check_seed

    modulating = ("smoothrl/HVAC-v0", "smoothrl/HVACMultiZone-v0", "smoothrl/EPlus-v0")
    if env not in modulating:
        raise SmoothRLError(f"--env must be a modulating HVAC id ({', '.join(modulating)}), not {env}")
    check_number("--port", port, PORT)
    check_number("--speedup", speedup, SPEEDUP)
    check_seed("--seed", seed)
    if split not in ("test", "train"):
        raise SmoothRLError(f"--split must be test or train, got {split!r}")


@bridge_app.command("bacnet-hvac")
@user_errors
def bridge_bacnet_hvac(
    preset: PresetOption = None,
    env: HvacEnvOption = "smoothrl/HVAC-v0",
    port: Annotated[int, typer.Option(help="BACnet/IP UDP port (the standard one is 47808).")] = 47808,
    host: HostOption = "127.0.0.1",
    device: Annotated[int, typer.Option(help="The device instance.")] = 599,
    fallback: Annotated[
        str, typer.Option(help="The building's own sequence at priority 16: pi, thermostat (tuned) or none.")
    ] = "pi",
    lockstep: LockstepOption = True,
    speedup: SpeedupOption = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the episode's start day.")] = 10_000,
    split: SplitOption = "test",
) -> None:
    """Run the HVAC simulator as a BACnet/IP device, as the plant of the bacnet backend."""
    from smoothrl.checks import INSTANCE, check_number
    from smoothrl.hardware.backends import needs

    _check_plant_options(env, port, speedup, seed, split)
    check_number("--device", device, INSTANCE)
    if fallback not in ("pi", "thermostat", "none"):
        raise SmoothRLError(f"--fallback must be pi, thermostat or none, got {fallback!r}")
    needs("bacpypes3", "bacnet")
    from smoothrl.hardware.backends.bacnet_plant import HVACBacnetServer

    plant = HVACBacnetServer(
        preset,
        port,
        host,
        device,
        lockstep,
        speedup,
        seed,
        split,
        env,
        fallback=None if fallback == "none" else fallback,
    )
    mode = "lock-step" if lockstep else f"real time x{speedup:g}"
    typer.echo(f"plant: {env} as BACnet device {device} on {host}:{port} ({mode}); its own sequence: {fallback}")
    typer.echo(json.dumps(plant.object_map()))
    try:
        result = plant.serve(__import__("threading").Event())
    except KeyboardInterrupt:
        result = {"steps": plant.steps, "episode_return": plant.episode_return, "kpis": plant.kpis}
    typer.echo(json.dumps(result))


@bridge_app.command("ros2")
@user_errors
def bridge_ros2(
    env: Annotated[str, typer.Option(help="The robot: a PyBullet id, Pendulum-v1, or any gymnasium / smoothrl id.")],
    domain_id: Annotated[int, typer.Option(help="The ROS domain id (ROS_DOMAIN_ID).")] = 0,
    localhost_only: Annotated[
        bool, typer.Option("--localhost-only/--network", help="Discovery and data on 127.0.0.1 only, or the network.")
    ] = True,
    lockstep: LockstepOption = True,
    seed: Annotated[int, typer.Option(help="Seed of the first episode.")] = 10_000,
    episodes: Annotated[int | None, typer.Option(help="Stop after this many episodes (default: never).")] = None,
) -> None:
    """Run an env as a ros2_control-shaped robot on ROS 2 (joint states, forward command controller)."""
    from smoothrl.checks import COUNT, Range, check_number, check_seed
    from smoothrl.envs import check_env_id
    from smoothrl.hardware.backends import needs

    check_number("--domain-id", domain_id, Range(0, 232, integer=True))
    check_seed("--seed", seed)
    if episodes is not None:
        check_number("--episodes", episodes, COUNT)
    check_env_id(env)
    needs("cyclonedds", "ros2")
    from smoothrl.hardware.backends.ros2_bridge import JOINT_STATES, serve_ros2

    where = "127.0.0.1 only" if localhost_only else "the network"
    typer.echo(
        f"robot: {env} on ROS domain {domain_id} ({where}; {'lock-step' if lockstep else 'real time'}): "
        f"{JOINT_STATES}, /smoothrl/observation, /smoothrl/status; Ctrl-C stops"
    )
    returns = serve_ros2(env, domain_id, lockstep, seed, episodes, localhost_only)
    typer.echo(json.dumps({"episode_returns": returns}))
