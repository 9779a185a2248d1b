"""HVAC building simulator: fast grey-box thermal model on real weather, BOPTEST-style KPIs.

Ids (``gymnasium.make(id, preset=..., split="train"|"test", **overrides)``):

- ``smoothrl/HVAC-v0``: modulating heat pump (continuous action), single-zone office by default;
- ``smoothrl/HVACDiscrete-v0``: staged on/off heat pump (discrete action);
- ``smoothrl/HVACMultiZone-v0``: modulating heat pumps in the 5-zone office.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smoothrl.envs.registration import register

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

ENTRY_POINT = "smoothrl.envs.hvac.env:HVACEnv"
#: what every HVAC env reports at an episode's end (``HVACSimulator.kpis``; BOPTEST definitions)
KPI_NAMES = (
    "tdis_tot",
    "ener_tot",
    "cost_tot",
    "pele_tot",
    "switches_per_day",
    "min_onoff_violations_requested",
    "atvl_tot",
    "actions_clipped",
)
#: id -> constructor keywords fixed by the id (the user may still pass ``preset``).
HVAC_IDS: dict[str, dict[str, Any]] = {
    "smoothrl/HVAC-v0": {"discrete": False},
    "smoothrl/HVACDiscrete-v0": {"discrete": True},
    "smoothrl/HVACMultiZone-v0": {"discrete": False, "preset": "office_5zone_chicago"},
}


def register_ids() -> None:
    """Register the HVAC ids with gymnasium (idempotent)."""
    for env_id, kwargs in HVAC_IDS.items():
        register(
            env_id,
            ENTRY_POINT,
            kwargs,
            vec_entry_point="smoothrl.envs.hvac:make_hvac_vec_env",
            # evaluation plays the test weeks (every 4th week) in order, each once
            eval_kwargs={"split": "test", "in_order": True},
            splits=("train", "test"),
            kpis=KPI_NAMES,
            controllers=True,
        )


def make_hvac_vec_env(env_id: str, n_envs: int, seed: int | None, **kwargs: Any) -> VecEnv:
    """
    The batched SB3 VecEnv of an HVAC id (what ``smoothrl train`` uses for any ``--n-envs``).

    :param env_id: one of ``HVAC_IDS``
    :param n_envs: buildings simulated together
    :param seed: seed of building 0 (building i gets ``seed + i``)
    :param kwargs: as for ``gymnasium.make``
    :return: the VecEnv
    """
    from smoothrl.envs.hvac.env import HVACVecEnv, HVACVectorEnv

    venv = HVACVecEnv(HVACVectorEnv(n_envs, **{**HVAC_IDS[env_id], **kwargs}))
    venv.seed(seed)
    return venv
