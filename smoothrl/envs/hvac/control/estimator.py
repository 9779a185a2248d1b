"""A Kalman filter on the RC model: the zone air temperatures are measured, the thermal-mass
temperatures are not, and an MPC needs both."""

from __future__ import annotations

import numpy as np

from smoothrl.envs.hvac.thermal import ThermalModel


class RCKalmanFilter:
    """
    Linear Kalman filter for ``x' = A_d x + B_d u + w``, ``y = T_air + v`` of the discretized RC
    network (:class:`~smoothrl.envs.hvac.thermal.ThermalModel`), one per building.

    :param model: the discretized RC model the controller believes in
    :param air_noise: std of the process noise on the air nodes per step, K
    :param mass_noise: std of the process noise on the mass nodes per step, K
    :param sensor_noise: std of the zone temperature sensor, K
    :param initial_mass_std: std of the first guess of the mass temperature (taken equal to the air's), K
    """

    def __init__(
        self,
        model: ThermalModel,
        air_noise: float = 0.1,
        mass_noise: float = 0.02,
        sensor_noise: float = 0.1,
        initial_mass_std: float = 3.0,
    ) -> None:
        z = model.n_zones
        self.model, self.z = model, z
        self.q = np.diag(np.r_[np.full(z, air_noise**2), np.full(z, mass_noise**2)])
        self.r = np.eye(z) * sensor_noise**2
        self.c = np.eye(2 * z)[:z]
        self.p0 = np.diag(np.r_[np.full(z, sensor_noise**2), np.full(z, initial_mass_std**2)])
        self.x = np.zeros(2 * z)
        self.p = self.p0.copy()

    def start(self, t_air: np.ndarray) -> None:
        """
        First measurement of an episode: air as measured, mass guessed equal to it.

        :param t_air: zone air temperatures ``(Z,)``
        """
        self.x = np.r_[t_air, t_air].astype(np.float64)
        self.p = self.p0.copy()

    def update(self, u: np.ndarray, t_air: np.ndarray) -> np.ndarray:
        """
        Predict one step with the inputs that acted over it, then correct with the new measurement.

        :param u: the step's inputs ``[T_out, Q_air (Z), Q_mass (Z)]``, degC and W
        :param t_air: the zone air temperatures measured at the step's end ``(Z,)``
        :return: the estimated state ``[T_air (Z), T_mass (Z)]``
        """
        m = self.model
        x = m.ad @ self.x + m.bd @ u
        p = m.ad @ self.p @ m.ad.T + self.q
        s = self.c @ p @ self.c.T + self.r
        gain = np.linalg.solve(s, self.c @ p).T
        self.x = x + gain @ (t_air - self.c @ x)
        self.p = (np.eye(2 * self.z) - gain @ self.c) @ p
        return self.x.copy()
