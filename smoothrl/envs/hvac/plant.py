"""The HVAC plant: one reversible air-source heat pump per zone, batched over buildings.

The controller sends a signal ``r`` in ``[-1, 1]`` per zone: positive heats, negative cools,
``|r|`` is the fraction of capacity. Below the lowest running fraction (``min_modulation``
for the modulating compressor, one stage for the staged one) the compressor is off. Like a
real compressor controller, the plant refuses to start before ``min_off_minutes`` of rest and
to stop before ``min_on_minutes`` of running: a refused stop keeps it running at its lowest
fraction, a refused start keeps it off. A reversal (heat <-> cool) passes through off.

The rules themselves are compiled scalar functions in ``kernels.py``, shared with the
simulator's step kernel.
"""

from __future__ import annotations

import math

import numpy as np

from smoothrl.envs.hvac import kernels
from smoothrl.envs.hvac.spec import PlantSpec


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
        self.params = kernels.plant_params(spec, self.min_fraction, self.min_on_steps, self.min_off_steps)
        self.mode = np.zeros((batch, zones), dtype=np.int64)  # -1 cooling, 0 off, 1 heating
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
        heating = np.array([kernels.heating_capacity(self.params, float(t)) for t in np.ravel(t_out)])
        return heating.reshape(np.shape(t_out)), self.spec.cooling_capacity

    def cop(self, mode: np.ndarray, t_zone: np.ndarray, t_out: np.ndarray) -> np.ndarray:
        """
        Coefficient of performance: a fraction of the Carnot COP, clipped.

        :param mode: ``(batch, zones)`` -1 / 0 / 1
        :param t_zone: zone air temperatures ``(batch, zones)``
        :param t_out: outdoor temperature, broadcastable to ``mode``
        :return: COP (heating COP where heating, cooling EER where cooling)
        """
        m, tz, to = np.broadcast_arrays(mode, t_zone, t_out)
        out = [
            kernels.cop(self.params, int(a), float(b), float(c))
            for a, b, c in zip(m.ravel(), tz.ravel(), to.ravel(), strict=True)
        ]
        return np.array(out).reshape(m.shape)

    def apply(self, request: np.ndarray) -> dict[str, np.ndarray]:
        """
        Apply the controller's requests, with compressor protection.

        :param request: signals ``(batch, zones)`` in ``[-1, 1]``
        :return: ``switched`` (on/off transitions this step) and ``refused`` (requests the
            protection turned down), both ``(batch, zones)`` bool
        """
        switched = np.zeros(self.mode.shape, dtype=np.bool_)
        refused = np.zeros(self.mode.shape, dtype=np.bool_)
        kernels.apply_all(
            self.params,
            np.asarray(request, dtype=np.float64),
            self.mode,
            self.level,
            self.timer,
            self.signal,
            switched,
            refused,
        )
        return {"switched": switched, "refused": refused}

    def power(self, t_zone: np.ndarray, t_out: np.ndarray) -> dict[str, np.ndarray]:
        """
        Thermal and electric power at the current state.

        :param t_zone: zone air temperatures ``(batch, zones)``
        :param t_out: outdoor temperature ``(batch,)``
        :return: ``heat`` (W into each zone; negative when cooling) and ``electric`` (W per zone,
            compressor + fan)
        """
        heat = np.empty(self.mode.shape)
        electric = np.empty(self.mode.shape)
        kernels.power_all(
            self.params,
            self.mode,
            self.level,
            np.ascontiguousarray(t_zone, dtype=np.float64),
            np.asarray(t_out, dtype=np.float64),
            heat,
            electric,
        )
        return {"heat": heat, "electric": electric}
