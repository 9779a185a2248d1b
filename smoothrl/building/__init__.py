"""Building data that the HVAC simulator and a building controller share: weather files, the
calendar and its time features, electricity tariffs, and the year of exogenous observations
built from them (:mod:`smoothrl.building.exogenous`).

numpy, pydantic and the standard library only: a controller running ``smoothrl.hardware``
computes its forecast and price channels with the same code the simulator trained on.
"""
