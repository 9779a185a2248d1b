"""Weather: EPW (TMY3) files, and solar irradiance on the building's facades.

The EPW files are the 16 US TMY3 files shipped by the PyPI package ``pyenergyplus-lbnl``
(``pyenergyplus/data/weather/``); any other EPW file can be given by path. Solar geometry
follows Duffie & Beckman, *Solar Engineering of Thermal Processes* (Spencer's declination and
equation of time, eq. 1.6.2 for the angle of incidence), with an isotropic sky and ground
reflectance 0.2 on vertical surfaces.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from smoothrl.errors import SmoothRLError

HOURS_PER_YEAR = 8760
#: Facade azimuths (degrees from south, west positive), in the order of ``Weather.facade``.
FACADES = {"south": 0.0, "east": -90.0, "north": 180.0, "west": 90.0}
GROUND_REFLECTANCE = 0.2
# EPW data columns (0-based): https://bigladdersoftware.com/epx/docs/ Auxiliary Programs, EPW format
_COL_HOUR, _COL_TDB, _COL_GHI, _COL_DNI, _COL_DHI = 3, 6, 13, 14, 15
_MISSING = {_COL_TDB: 99.9, _COL_GHI: 9999.0, _COL_DNI: 9999.0, _COL_DHI: 9999.0}


def weather_dir() -> Path:
    """:return: the folder of EPW files shipped by ``pyenergyplus-lbnl``
    :raises SmoothRLError: when that package is not installed (a controller: give a path)"""
    try:
        import pyenergyplus
    except ImportError:
        raise SmoothRLError(
            "shipped weather files need pyenergyplus-lbnl (not installed here); give the EPW file's path"
        ) from None

    return Path(pyenergyplus.__file__).resolve().parent / "data" / "weather"


def available_weather() -> list[str]:
    """:return: the shipped EPW file names (without ``.epw``)"""
    return sorted(p.stem for p in weather_dir().glob("*.epw"))


def resolve_weather(name: str) -> Path:
    """
    Find an EPW file: a path, a shipped file's name, or a unique part of it (``"denver"``).

    :param name: the weather name or path
    :return: the EPW path
    :raises SmoothRLError: when nothing or several files match
    """
    path = Path(name).expanduser()
    if path.suffix.lower() == ".epw" or path.is_file():
        if not path.is_file():
            raise SmoothRLError(f"weather file {path} does not exist; give an EPW path or one of {available_weather()}")
        return path
    matches = [s for s in available_weather() if name.lower() in s.lower()]
    exact = [s for s in matches if s.lower() == name.lower()]
    if len(exact) == 1 or len(matches) == 1:
        return weather_dir() / f"{(exact or matches)[0]}.epw"
    hint = "matches several files: " + ", ".join(matches) if matches else f"matches none of {available_weather()}"
    raise SmoothRLError(f"weather '{name}' {hint}; give a longer name or an EPW path")


@dataclass(frozen=True)
class Weather:
    """
    One year of hourly weather (8760 values) and what the building model needs of it.

    :param name: file name
    :param latitude: degrees north
    :param longitude: degrees east
    :param timezone: hours from UTC
    :param t_out: outdoor dry-bulb temperature (degC), at the end of each hour
    :param ghi: global horizontal irradiance (W/m2), mean over each hour
    :param dni: direct normal irradiance (W/m2)
    :param dhi: diffuse horizontal irradiance (W/m2)
    :param facade: irradiance on vertical south, east, north, west surfaces (W/m2), shape ``(4, 8760)``
    :param start_weekday: weekday of January 1st (0 = Monday), from the ``DATA PERIODS`` header
    """

    name: str
    latitude: float
    longitude: float
    timezone: float
    t_out: np.ndarray
    ghi: np.ndarray
    dni: np.ndarray
    dhi: np.ndarray
    facade: np.ndarray
    start_weekday: int = 0

    def resample(self, step_minutes: int) -> dict[str, np.ndarray]:
        """
        Weather at each control step of the year (linear interpolation, wrapping at year end).

        Temperatures are interpolated at the start of each step, irradiance at its middle.

        :param step_minutes: control step length
        :return: ``t_out`` ``(n,)``, ``ghi`` ``(n,)``, ``facade`` ``(4, n)`` with ``n = 525600 / step_minutes``
        """
        n = HOURS_PER_YEAR * 60 // step_minutes
        start_h = np.arange(n) * step_minutes / 60.0
        mid_h = start_h + step_minutes / 120.0
        hours = np.arange(HOURS_PER_YEAR + 1, dtype=np.float64)

        def interp(values: np.ndarray, t: np.ndarray, offset: float) -> np.ndarray:
            wrapped = np.r_[values[-1], values] if offset == 1.0 else np.r_[values, values[0]]
            grid = hours if offset == 1.0 else hours + offset
            return np.interp(t, grid, wrapped)

        return {
            "t_out": interp(self.t_out, start_h, 1.0),  # value i is at hour i + 1 (hour ending)
            "ghi": interp(self.ghi, mid_h, 0.5),  # value i is the mean over (i, i + 1]
            "facade": np.stack([interp(f, mid_h, 0.5) for f in self.facade]),
        }


def _parse_float(text: str, path: Path, line: int, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SmoothRLError(
            f"{path}, line {line}: {what} '{text}' is not a number; the EPW file is malformed"
        ) from None


def facade_irradiance(
    latitude: float, longitude: float, timezone: float, ghi: np.ndarray, dni: np.ndarray, dhi: np.ndarray
) -> np.ndarray:
    """
    Irradiance on vertical surfaces facing south, east, north and west, for each hour of a year.

    :param latitude: degrees north
    :param longitude: degrees east
    :param timezone: hours from UTC
    :param ghi: global horizontal irradiance, 8760 values
    :param dni: direct normal irradiance
    :param dhi: diffuse horizontal irradiance
    :return: shape ``(4, 8760)``, W/m2
    """
    hour = np.arange(HOURS_PER_YEAR) + 0.5  # middle of each hour (clock time)
    day = np.floor(hour / 24.0) + 1.0
    b = 2.0 * np.pi * (day - 1.0) / 365.0
    decl = (
        0.006918
        - 0.399912 * np.cos(b)
        + 0.070257 * np.sin(b)
        - 0.006758 * np.cos(2 * b)
        + 0.000907 * np.sin(2 * b)
        - 0.002697 * np.cos(3 * b)
        + 0.00148 * np.sin(3 * b)
    )
    eot_min = 229.2 * (
        0.000075 + 0.001868 * np.cos(b) - 0.032077 * np.sin(b) - 0.014615 * np.cos(2 * b) - 0.04089 * np.sin(2 * b)
    )
    solar_time = (hour % 24.0) + (4.0 * (longitude - 15.0 * timezone) + eot_min) / 60.0
    omega = np.radians(15.0 * (solar_time - 12.0))
    phi = np.radians(latitude)
    cos_zenith = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(omega)
    out = np.empty((len(FACADES), HOURS_PER_YEAR))
    for k, azimuth in enumerate(FACADES.values()):
        g = np.radians(azimuth)
        cos_inc = (
            -np.sin(decl) * np.cos(phi) * np.cos(g)
            + np.cos(decl) * np.sin(phi) * np.cos(g) * np.cos(omega)
            + np.cos(decl) * np.sin(g) * np.sin(omega)
        )
        beam = dni * np.clip(cos_inc, 0.0, None) * (cos_zenith > 0)
        out[k] = beam + 0.5 * dhi + 0.5 * GROUND_REFLECTANCE * ghi
    return out


@cache
def read_epw(path: str | Path) -> Weather:
    """
    Read an EPW weather file (cached per path).

    :param path: the file, or a name for :func:`resolve_weather`
    :return: the weather
    :raises SmoothRLError: for a missing or malformed file (naming the line)
    """
    path = resolve_weather(str(path))
    try:
        with path.open(newline="", encoding="latin-1") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise SmoothRLError(f"cannot read weather file {path}: {e.strerror}") from None
    if not rows or rows[0][:1] != ["LOCATION"] or len(rows[0]) < 10:
        raise SmoothRLError(f"{path} is not an EPW file (no LOCATION header on line 1); give a valid EPW file")
    loc = rows[0]
    lat = _parse_float(loc[6], path, 1, "latitude")
    lon = _parse_float(loc[7], path, 1, "longitude")
    tz = _parse_float(loc[8], path, 1, "time zone")
    data = rows[8:]
    if len(data) < HOURS_PER_YEAR:
        raise SmoothRLError(
            f"{path} has {len(data)} hourly rows, an EPW year needs {HOURS_PER_YEAR}; give a complete EPW file"
        )
    values = np.empty((4, HOURS_PER_YEAR))
    for i, row in enumerate(data[:HOURS_PER_YEAR]):
        line = i + 9
        if len(row) <= _COL_DHI:
            raise SmoothRLError(f"{path}, line {line}: {len(row)} fields, an EPW row needs at least 16")
        for j, col in enumerate((_COL_TDB, _COL_GHI, _COL_DNI, _COL_DHI)):
            v = _parse_float(row[col], path, line, f"field {col + 1}")
            if v >= _MISSING[col]:
                raise SmoothRLError(f"{path}, line {line}: field {col + 1} is missing ({row[col]}); fill the gap")
            values[j, i] = v
    t_out, ghi, dni, dhi = values
    weekday = _start_weekday(rows[:8])
    facade = facade_irradiance(lat, lon, tz, ghi, dni, dhi)
    return Weather(path.stem, lat, lon, tz, t_out, ghi, dni, dhi, facade, weekday)


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _start_weekday(header: list[list[str]]) -> int:
    """Weekday of the first data day from the ``DATA PERIODS`` line (Monday when absent)."""
    for row in header:
        if row[:1] == ["DATA PERIODS"] and len(row) > 4 and row[4].strip().lower() in _WEEKDAYS:
            return _WEEKDAYS.index(row[4].strip().lower())
    return 0
