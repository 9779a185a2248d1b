"""EnergyPlus co-simulation backend: the HVAC env's observation, action, reward and KPI contract
on the building-energy industry's reference engine (``pyenergyplus-lbnl``'s runtime API).

Ids: ``smoothrl/EPlus-v0`` (modulating heat pumps), ``smoothrl/EPlusDiscrete-v0`` (staged).
"""

from __future__ import annotations

from smoothrl.envs.registration import register

ENTRY_POINT = "smoothrl.envs.eplus.env:EPlusEnv"
EPLUS_IDS = {"smoothrl/EPlus-v0": {"discrete": False}, "smoothrl/EPlusDiscrete-v0": {"discrete": True}}


def register_ids(kpis: tuple[str, ...]) -> None:
    """Register the EnergyPlus ids (idempotent); they report the HVAC env's KPIs."""
    for env_id, kwargs in EPLUS_IDS.items():
        register(
            env_id,
            ENTRY_POINT,
            kwargs,
            eval_kwargs={"split": "test", "in_order": True},
            splits=("train", "test"),
            kpis=kpis,
            controllers=True,
        )
