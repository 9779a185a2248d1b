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
        self.signal = np.zeros((batch, zones))  # the delivered signal mode * level, in [-1, 1]

    def reset(self, mask: np.ndarray) -> None:
        """
        Switch the plants of the masked buildings off, free to start.

        :param mask: ``(batch,)`` bool
        """
        self.mode[mask] = 0
        self.level[mask] = 0.0
        self.signal[mask] = 0.0
        self.timer[mask] = 1 << 30

    def locked(self) -> np.ndarray:
        """:return: ``(batch, zones)`` 1.0 where a switch (on->off or off->on) would be refused now"""
        return (self.timer < np.where(self.mode != 0, self.min_on_steps, self.min_off_steps)).astype(np.float64)

    def capacity(self, t_out: np.ndarray) -> tuple[np.ndarray, float]:
        """
        :param t_out: outdoor temperature ``(batch,)``
        :return: heating capacity ``(batch,)`` (derated in the cold) and cooling capacity, W per zone
        """
        s = self.spec
        # np.minimum/np.maximum: several times faster than np.clip on the small arrays of a step
        factor = np.minimum(np.maximum(1.0 - s.derate_per_k * (_REF_T_OUT - t_out), s.derate_floor), 1.0)
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
        sign = np.where(mode >= 0, 1.0, -1.0)  # heating: indoor coil condenses; cooling: it evaporates
        inside = t_zone + sign * s.lift_indoor  # T_cond when heating, T_evap when cooling
        outside = t_out - sign * s.lift_outdoor
        lift = np.maximum(sign * (inside - outside), 1.0)  # T_cond - T_evap
        return np.minimum(np.maximum(s.carnot_efficiency * (inside + KELVIN) / lift, s.cop_min), s.cop_max)

    def apply(self, request: np.ndarray) -> dict[str, np.ndarray]:
        """
        Apply the controller's requests, with compressor protection.

        :param request: signals ``(batch, zones)`` in ``[-1, 1]``
        :return: ``switched`` (on/off transitions this step) and ``refused`` (requests the
            protection turned down), both ``(batch, zones)`` bool
        """
        want = (np.sign(request) * (np.abs(request) >= self.min_fraction - 1e-12)).astype(np.int8)
        on = self.mode != 0
        stop = on & (want != self.mode)  # includes reversals, which pass through off
        start = ~on & (want != 0)
        may = self.timer >= np.where(on, self.min_on_steps, self.min_off_steps)
        stop_ok, start_ok = stop & may, start & may
        refused = (stop | start) & ~may
        running = on & ~stop_ok  # kept running, including refused stops
        self.mode = np.where(start_ok, want, self.mode * running).astype(np.int8)
        self.level = np.where(start_ok | (running & ~stop), np.abs(request), 0.0)
        self.level[running & stop] = self.min_fraction  # a refused stop runs at the lowest fraction
        self.signal = self.mode * self.level
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
        heat = self.signal * np.where(self.mode > 0, cap_heat[:, None], cap_cool)
        cop = self.cop(self.mode, t_zone, t_out[:, None])
        fan = self.spec.fan_power * self.level**3
        return {"heat": heat, "electric": np.abs(heat) / cop + fan}
