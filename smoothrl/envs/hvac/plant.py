"""The HVAC plant: one reversible air-source heat pump per zone, batched over buildings.

The controller sends a signal ``r`` in ``[-1, 1]`` per zone: positive heats, negative cools,
``|r|`` is the fraction of capacity. Below the lowest running fraction (``min_modulation``
for the modulating compressor, one stage for the staged one) the compressor is off. Like a
real compressor controller, the plant refuses to start before ``min_off_minutes`` of rest and
to stop before ``min_on_minutes`` of running: a refused stop keeps it running at its lowest
fraction, a refused start keeps it off. A reversal (heat <-> cool) passes through off.
"""

from __future__ import annotations

import math

import numpy as np

from smoothrl.envs.hvac.spec import PlantSpec

KELVIN = 273.15
_REF_T_OUT = 7.0  # degC at which heating capacity is rated


class HeatPumps:
    """
    The heat pumps of ``batch`` buildings with ``zones`` zones each.

    :param spec: plant parameters
    :param batch: number of buildings
    :param zones: zones per building
    :param step_minutes: control step
    :param discrete: staged compressor (signals are multiples of ``1 / stages``)
    """

    def __init__(self, spec: PlantSpec, batch: int, zones: int, step_minutes: int, discrete: bool) -> None:
        self.spec = spec
        self.discrete = discrete
        self.min_fraction = 1.0 / spec.stages if discrete else spec.min_modulation
        self.min_on_steps = math.ceil(spec.min_on_minutes / step_minutes - 1e-9)
        self.min_off_steps = math.ceil(spec.min_off_minutes / step_minutes - 1e-9)
        self.mode = np.zeros((batch, zones), dtype=np.int8)  # -1 cooling, 0 off, 1 heating
        self.level = np.zeros((batch, zones))  # running fraction of capacity
        self.timer = np.full((batch, zones), 1 << 30, dtype=np.int64)  # steps in the current on/off state

    def reset(self, mask: np.ndarray) -> None:
        """
        Switch the plants of the masked buildings off, free to start.

        :param mask: ``(batch,)`` bool
        """
        self.mode[mask] = 0
        self.level[mask] = 0.0
        self.timer[mask] = 1 << 30

    @property
    def signal(self) -> np.ndarray:
        """The delivered signal ``mode * level`` in ``[-1, 1]``, ``(batch, zones)``."""
        return self.mode * self.level

    def locked(self) -> np.ndarray:
        """:return: ``(batch, zones)`` bool: a switch (on->off or off->on) would be refused now"""
        on = self.mode != 0
        return np.where(on, self.timer < self.min_on_steps, self.timer < self.min_off_steps)

    def capacity(self, t_out: np.ndarray) -> tuple[np.ndarray, float]:
        """
        :param t_out: outdoor temperature ``(batch,)``
        :return: heating capacity ``(batch,)`` (derated in the cold) and cooling capacity, W per zone
        """
        s = self.spec
        factor = np.clip(1.0 - s.derate_per_k * (_REF_T_OUT - t_out), s.derate_floor, 1.0)
        return s.heating_capacity * factor, s.cooling_capacity

    def cop(self, mode: np.ndarray, t_zone: np.ndarray, t_out: np.ndarray) -> np.ndarray:
        """
        Coefficient of performance: a fraction of the Carnot COP, clipped.

        :param mode: ``(batch, zones)`` -1 / 0 / 1
        :param t_zone: zone air temperatures ``(batch, zones)``
        :param t_out: outdoor temperature ``(batch, 1)`` or broadcastable
        :return: COP ``(batch, zones)`` (heating COP where heating, cooling EER where cooling)
        """
        s = self.spec
        heating = mode >= 0
        t_cond = np.where(heating, t_zone + s.lift_indoor, t_out + s.lift_outdoor) + KELVIN
        t_evap = np.where(heating, t_out - s.lift_outdoor, t_zone - s.lift_indoor) + KELVIN
        lift = np.maximum(t_cond - t_evap, 1.0)
        carnot = np.where(heating, t_cond, t_evap) / lift
        return np.clip(s.carnot_efficiency * carnot, s.cop_min, s.cop_max)

    def apply(self, request: np.ndarray) -> dict[str, np.ndarray]:
        """
        Apply the controller's requests, with compressor protection.

        :param request: signals ``(batch, zones)`` in ``[-1, 1]``
        :return: ``switched`` (on/off transitions this step) and ``refused`` (requests the
            protection turned down), both ``(batch, zones)`` bool
        """
        want = np.where(np.abs(request) >= self.min_fraction - 1e-12, np.sign(request), 0).astype(np.int8)
        on = self.mode != 0
        stop = on & (want != self.mode)  # includes reversals, which pass through off
        start = ~on & (want != 0)
        stop_ok = stop & (self.timer >= self.min_on_steps)
        start_ok = start & (self.timer >= self.min_off_steps)
        refused = (stop & ~stop_ok) | (start & ~start_ok)
        keep = on & ~stop
        self.level = np.where(keep | start_ok, np.abs(request), self.level)
        self.level = np.where(stop & ~stop_ok, self.min_fraction, self.level)  # refused stop: run at minimum
        self.mode = np.where(start_ok, want, np.where(stop_ok, 0, self.mode)).astype(np.int8)
        self.level = np.where(self.mode == 0, 0.0, self.level)
        switched = stop_ok | start_ok
        self.timer = np.where(switched, 0, self.timer) + 1
        return {"switched": switched, "refused": refused}

    def power(self, t_zone: np.ndarray, t_out: np.ndarray) -> dict[str, np.ndarray]:
        """
        Thermal and electric power at the current state.

        :param t_zone: zone air temperatures ``(batch, zones)``
        :param t_out: outdoor temperature ``(batch,)``
        :return: ``heat`` (W into each zone; negative when cooling) and ``electric`` (W per zone,
            compressor + fan)
        """
        cap_heat, cap_cool = self.capacity(t_out)
        heat = np.where(self.mode > 0, self.level * cap_heat[:, None], -self.level * cap_cool)
        heat = np.where(self.mode == 0, 0.0, heat)
        cop = self.cop(self.mode, t_zone, t_out[:, None])
        fan = self.spec.fan_power * self.level**3
        return {"heat": heat, "electric": np.abs(heat) / cop + fan}
