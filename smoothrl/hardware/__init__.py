"""The deployment runtime: an exported policy artefact driving hardware at a fixed rate, safely.

Runs on a controller that has numpy, onnxruntime, PyYAML, pydantic and (for Modbus) pymodbus,
(for BACnet/IP) bacpypes3 or (for ROS 2) cyclonedds, and no torch or SB3 (tested):

- :mod:`~smoothrl.hardware.artefact`: load ``policy.onnx`` + ``manifest.json``, check a profile
  against it, and act (keeping the action history the policy observes);
- :mod:`~smoothrl.hardware.profile`: a controller profile (``hardware/*.yaml``): backend,
  control period, observation checks, command limits, bring-up, watchdog;
- :mod:`~smoothrl.hardware.safety`: the safety filter between policy and hardware (bounds, rate
  and jerk limits that always hold, low-pass, safe action) and the bring-up sequence;
- :mod:`~smoothrl.hardware.interface`: ``HardwareInterface``, a lifecycle like ros2_control's;
- :mod:`~smoothrl.hardware.loop`: the fixed-rate loop on absolute deadlines, with its watchdog,
  latched emergency stop, timing figures and log;
- :mod:`~smoothrl.hardware.sources`: where each observation channel of a building controller
  comes from (a register, a BACnet object, a ROS 2 joint or topic, the clock, the weather file,
  the tariff, a constant);
- :mod:`~smoothrl.hardware.backend_settings`: each backend's section of a profile;
- :mod:`~smoothrl.hardware.backends`: ``sim`` (an env in its own process, real time or
  lock-step), ``udp`` (a robot bridge), ``modbus`` (building automation), ``bacnet`` (a
  supervisory controller on BACnet/IP, writing at a command priority) and ``ros2`` (a ros2_control
  robot over ROS 2 topics, without ROS).
"""
