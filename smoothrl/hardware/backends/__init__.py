"""Hardware backends: what a profile's ``backend:`` names.

- ``sim``: a gymnasium / smoothrl env in its own process (:mod:`smoothrl.hardware.backends.sim`);
- ``udp``: a robot bridge over a small binary UDP protocol (:mod:`smoothrl.hardware.backends.udp`);
- ``modbus``: building automation over Modbus TCP (:mod:`smoothrl.hardware.backends.modbus`);
- ``bacnet``: a supervisory controller on BACnet/IP, writing at a command priority
  (:mod:`smoothrl.hardware.backends.bacnet`, needs ``bacpypes3``);
- ``ros2``: a ros2_control robot over ROS 2 topics, without ROS (:mod:`smoothrl.hardware.backends.ros2`,
  needs ``cyclonedds``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smoothrl.errors import SmoothRLError

if TYPE_CHECKING:
    from smoothrl.hardware.interface import HardwareInterface
    from smoothrl.hardware.profile import HardwareProfile

BACKENDS = ("sim", "udp", "modbus", "bacnet", "ros2")


def make_interface(profile: HardwareProfile, lockstep: bool | None = None, speedup: float = 1.0) -> HardwareInterface:
    """
    The hardware interface a profile names.

    :param profile: the controller profile
    :param lockstep: override the profile's lock-step setting (sim backend)
    :param speedup: run a real-time sim this many times faster than the wall clock
    :return: the (unconfigured) interface
    :raises SmoothRLError: for an unknown backend
    """
    if profile.backend == "sim":
        from smoothrl.hardware.backends.sim import SimInterface

        return SimInterface(profile.sim, profile.control_period_s, lockstep=lockstep, speedup=speedup)
    if profile.backend == "udp":
        from smoothrl.hardware.backends.udp import UdpInterface

        return UdpInterface(profile.udp, profile.control_period_s, lockstep=lockstep)
    if profile.backend == "modbus":
        from smoothrl.hardware.backends.modbus import ModbusInterface

        settings = profile.modbus
        return ModbusInterface(
            settings, profile.obs_channels, settings["commands"], profile.control_period_s, lockstep, profile.exogenous
        )
    if profile.backend == "bacnet":
        needs("bacpypes3", "bacnet")
        from smoothrl.hardware.backends.bacnet import BacnetInterface

        return BacnetInterface(
            profile.bacnet, profile.obs_channels, profile.control_period_s, lockstep, profile.exogenous
        )
    if profile.backend == "ros2":
        needs("cyclonedds", "ros2")
        from smoothrl.hardware.backends.ros2 import Ros2Interface

        return Ros2Interface(profile.ros2, profile.obs_channels, lockstep)
    raise SmoothRLError(f"unknown backend {profile.backend!r} in {profile.path}; use one of: {', '.join(BACKENDS)}")


def needs(module: str, extra: str) -> None:
    """Refuse a backend whose protocol stack is not installed, naming the extra that brings it."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SmoothRLError(
            f"the {extra} backend needs {module}; install it: pip install 'smoothrl-runtime[{extra}]' "
            f"(or 'smoothrl[{extra}]')"
        )
