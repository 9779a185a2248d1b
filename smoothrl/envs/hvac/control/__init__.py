"""Controllers that are not learned, for the HVAC envs, behind SB3's ``predict`` (so every
evaluation path runs them): rule-based baselines (:mod:`.rules`, tuned per building by
:mod:`.tuning`, the tuned parameters shipped in the top-level ``baselines/`` folder) and economic
MPC (:mod:`.mpc`: the oracle bound and a realistic variant).

Names: ``thermostat``, ``pi`` (modulating plants), ``mpc-oracle`` (RC simulators),
``mpc-realistic``.
"""

from __future__ import annotations

from typing import Any

from smoothrl.envs.hvac.control.rules import PIController, Thermostat
from smoothrl.envs.hvac.simulator import HVACSimulator
from smoothrl.errors import SmoothRLError
from smoothrl.presets import load_yaml, preset_dir

#: the rule-based baselines, by name
RULES = {"thermostat": Thermostat, "pi": PIController}
#: the MPC variants, by name
MPCS = ("mpc-oracle", "mpc-realistic")
CONTROLLERS = (*RULES, *MPCS)


def plant_kind(discrete: bool) -> str:
    """:return: ``"staged"`` or ``"modulating"``: the section of a baselines file"""
    return "staged" if discrete else "modulating"


def baseline_file(preset: str) -> Any:
    """:return: the path of a building preset's tuned baselines (``baselines/<preset>.yaml``)"""
    return preset_dir("baselines") / f"{preset}.yaml"


def tuned_params(name: str, preset: str, discrete: bool) -> dict[str, Any] | None:
    """
    The parameters a rule-based baseline was tuned to for a building preset and plant.

    :param name: ``thermostat`` or ``pi``
    :param preset: the building preset (an HVAC spec's ``name``)
    :param discrete: staged (``True``) or modulating plant
    :return: the tuned entry (``params``, and how they were tuned), or ``None`` when none is shipped
    :raises SmoothRLError: when the file is malformed
    """
    path = baseline_file(preset)
    if not path.is_file():
        return None
    data = load_yaml(path) or {}
    entry = (data.get(plant_kind(discrete)) or {}).get(name) if isinstance(data, dict) else None
    if entry is None:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict):
        raise SmoothRLError(f"{path}: {plant_kind(discrete)}.{name} must hold a params mapping; fix the file")
    return entry


def believed_model(sim: HVACSimulator) -> str:
    """
    The RC model the realistic MPC believes in on EnergyPlus: the preset calibrated to it
    (``<preset>_eplus``, fitted by ``scripts/calibrate_rc.py``) where one is shipped, else the
    building's own preset.

    :param sim: the EnergyPlus env's simulator (its calendar, plant and comfort)
    :return: a preset name
    """
    from smoothrl.envs.hvac.spec import available_presets

    calibrated = f"{sim.spec.name}_eplus"
    return calibrated if calibrated in available_presets() else sim.spec.name


def make_controller(
    name: str, sim: HVACSimulator, params: dict[str, Any] | None = None, tuned: bool = True, seed: int = 0
) -> Any:
    """
    :param name: one of :data:`CONTROLLERS`
    :param sim: the env's simulator (``env.sim``; the MPC reads its clock, the oracle its state)
    :param params: the controller's keyword arguments (rule baselines: on top of the tuned ones)
    :param tuned: start a rule baseline from the parameters tuned for the env's building preset,
        when ``baselines/`` has them
    :param seed: seed of the realistic MPC's forecast errors
    :return: the controller (with ``predict``)
    :raises SmoothRLError: for an unknown name, a controller the plant cannot run, or a bad parameter
    """
    params = dict(params or {})
    if name in RULES:
        entry = tuned_params(name, sim.spec.name, sim.discrete) if tuned else None
        merged = {**(entry["params"] if entry else {}), **params}
        try:
            return RULES[name](sim.spec, sim.discrete, **merged)
        except TypeError as e:
            raise SmoothRLError(f"controller {name}: {e}; see its parameters in smoothrl.envs.hvac.control") from None
    if name in MPCS:
        from smoothrl.envs.hvac.control.mpc import EconomicMPC

        try:
            return EconomicMPC(sim, oracle=name == "mpc-oracle", seed=seed, **params)
        except TypeError as e:
            raise SmoothRLError(f"controller {name}: {e}; see smoothrl.envs.hvac.control.mpc.EconomicMPC") from None
    raise SmoothRLError(f"unknown controller '{name}'; choose one of: {', '.join(CONTROLLERS)}")
