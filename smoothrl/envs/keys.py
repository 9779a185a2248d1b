"""The ``info`` contract between smoothrl's envs and everything that reads them (a leaf module).

- ``info["action_unit"]``: the action the env received, in normalized ``[0, 1]`` units; every
  smoothness metric reads it (set by :class:`~smoothrl.envs.wrappers.ActionTrace` or by the env).
- ``info["kpis"]``: at an episode's last step, that episode's KPIs (a dict of floats).
- ``info["start_day"]``: at an episode's last step, the day of the year it started on (HVAC
  envs), so that comparisons pair episodes played on the same days.
"""

#: ``info`` key holding the action the env received, in normalized units (``[0, 1]``).
ACTION_INFO_KEY = "action_unit"

#: ``info`` key where an env reports its KPIs; the value at an episode's last step is that episode's KPIs.
KPI_INFO_KEY = "kpis"

#: ``info`` key where an HVAC env reports, at an episode's last step, the day of the year it started on.
START_DAY_INFO_KEY = "start_day"
