"""The artefact's manifest: one typed model that ``smoothrl export`` writes and the runtime reads.

``manifest.json`` says what the graph takes and gives: every observation channel the hardware
provides, with its name, unit and the range the policy saw in training; the action space; the
appended action history; the control period; the normalization's hash; the source run and the
versions. ``sha256`` is the graph file's hash and ``manifest_sha256`` the hash of the manifest
itself (its canonical JSON without that key), so a manifest edited after export (wider action
bounds, another control period, a ``file`` outside the artefact) is refused like a changed graph.

Only the standard library and pydantic: it loads on the controller.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from smoothrl.errors import SmoothRLError

MANIFEST = "manifest.json"
#: the manifest layout this runtime reads (2: named channels, the manifest's own hash)
MANIFEST_VERSION = 2

Finite = Annotated[float, Field(allow_inf_nan=False)]
Bound = Annotated[float, Field()]  # a space bound: finite, or +-inf where the env has none
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(_Strict):
    """
    One observation channel the hardware provides.

    :param name: the env's name for it (``t_zone[office]``, ``obs_3``)
    :param unit: its unit (``degC``, ``kW/m2``, ``1`` for dimensionless; empty: the env does not say)
    :param low: the lowest value the policy saw in training
    :param high: the highest
    """

    name: str = Field(min_length=1)
    unit: str = ""
    low: Finite
    high: Finite

    @model_validator(mode="after")
    def _ordered(self) -> Channel:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


class GraphInput(_Strict):
    """The graph's input: one float32 row per decision."""

    name: str = Field(min_length=1)
    dtype: Literal["float32"]
    size: Count


class GraphOutput(_Strict):
    """The graph's output: float32 actions, or int64 indices."""

    name: str = Field(min_length=1)
    dtype: Literal["float32", "int64"]


class ObservationSpace(_Strict):
    """The policy's flat Box input: the sensors, then the augmentations."""

    type: Literal["Box"]
    shape: list[Count] = Field(min_length=1, max_length=1)
    low: list[Bound]
    high: list[Bound]
    sensors: Count
    channels: list[Channel]

    @model_validator(mode="after")
    def _sizes(self) -> ObservationSpace:
        size = self.shape[0]
        if len(self.low) != size or len(self.high) != size:
            raise ValueError(f"low and high must have {size} values (the shape), got {len(self.low)}, {len(self.high)}")
        if self.sensors > size:
            raise ValueError(f"sensors ({self.sensors}) exceed the input size ({size})")
        if len(self.channels) != self.sensors:
            raise ValueError(f"{len(self.channels)} channels are named for {self.sensors} sensors")
        if any(math.isnan(v) for v in (*self.low, *self.high)):
            raise ValueError("low and high must be numbers or +-Infinity, not NaN")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be distinct")
        return self


class BoxActions(_Strict):
    """Continuous commands within finite bounds."""

    type: Literal["Box"]
    shape: list[Count] = Field(min_length=1)
    low: list[Finite]
    high: list[Finite]

    @model_validator(mode="after")
    def _bounds(self) -> BoxActions:
        size = math.prod(self.shape)
        if len(self.low) != size or len(self.high) != size:
            raise ValueError(f"low and high must have {size} values (the shape), got {len(self.low)}, {len(self.high)}")
        if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError("every low must be below its high")
        return self


class DiscreteActions(_Strict):
    """An index in ``start .. start + n - 1``."""

    type: Literal["Discrete"]
    n: Count
    start: int


class ActionHistory(_Strict):
    """The last ``k`` commands, normalized to ``[0, 1]``, appended to the sensors."""

    kind: Literal["action_history"]
    k: Count
    dim: Count
    units: str


class Normalization(_Strict):
    """Observation normalization folded into the graph."""

    clip_obs: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    sha256: Hash


class Smoothing(_Strict):
    """Randomized smoothing inside the graph (a fixed noise tensor)."""

    sigma: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    samples: Count
    seed: int
    mode: Literal["median", "vote"]


def _file_name(value: str) -> str:
    """A plain file name inside the artefact directory (no folder, no parent, not hidden)."""
    if not value or value.startswith(".") or PurePosixPath(value).name != value or PureWindowsPath(value).name != value:
        raise ValueError(f"must be a file name inside the artefact directory, got {value!r}")
    return value


class Exogenous(_Strict):
    """
    What a building controller computes itself, bundled with the policy: the run's weather file
    (forecast channels) and tariff (price channels), so that the runtime needs nothing else.

    :param weather: the EPW file's name inside the artefact
    :param weather_sha256: its hash
    :param tariff: the run's tariff (:class:`smoothrl.building.tariff.TariffSpec` fields)
    :param step_minutes: the simulator's step
    """

    weather: str
    weather_sha256: Hash
    tariff: dict[str, Any]
    step_minutes: Annotated[int, Field(ge=1, le=1440)]

    _inside = field_validator("weather")(lambda cls, v: _file_name(v))


class Source(_Strict):
    """The run the artefact was exported from."""

    run_dir: str
    algo: str
    env: str
    env_kwargs: dict[str, Any]
    seed: int


class Manifest(_Strict):
    """
    ``manifest.json`` (layout :data:`MANIFEST_VERSION`).

    :param file: the graph's file name, inside the artefact directory
    :param sha256: the graph file's hash
    :param manifest_sha256: the hash of this manifest without this key (:func:`manifest_hash`)
    """

    manifest_version: Literal[2]
    format: Literal["onnx", "torchscript"]
    file: str
    sha256: Hash
    input: GraphInput
    output: GraphOutput
    observation_space: ObservationSpace
    action_space: Annotated[BoxActions | DiscreteActions, Field(discriminator="type")]
    augmentations: list[ActionHistory]
    normalization: Normalization | None
    smoothing: Smoothing | None
    certificate: dict[str, Any] | None
    control_period_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None
    source: Source
    versions: dict[str, str]
    exogenous: Exogenous | None = None
    manifest_sha256: Hash

    @field_validator("file")
    @classmethod
    def _inside(cls, value: str) -> str:
        return _file_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        discrete = isinstance(self.action_space, DiscreteActions)
        if (self.output.dtype == "int64") != discrete:
            raise ValueError(
                f"output dtype {self.output.dtype} does not fit a {self.action_space.type} action space "
                "(int64 indices for Discrete, float32 for Box)"
            )
        size = self.observation_space.shape[0]
        if self.input.size != size:
            raise ValueError(f"input.size {self.input.size} is not the observation shape {size}")
        appended = sum(a.k * a.dim for a in self.augmentations)
        if self.observation_space.sensors + appended != size:
            raise ValueError(
                f"{self.observation_space.sensors} sensors and {appended} appended values "
                f"do not make the input's {size}"
            )
        dim = 1 if discrete else math.prod(self.action_space.shape)  # type: ignore[union-attr]
        if any(a.dim != dim for a in self.augmentations):
            raise ValueError(f"the action history's dim must be the action's {dim}")
        if (self.smoothing is not None) and self.smoothing.mode != ("vote" if discrete else "median"):
            raise ValueError(f"smoothing.mode {self.smoothing.mode} does not fit a {self.action_space.type} action")
        return self


def canonical(manifest: dict[str, Any]) -> bytes:
    """:param manifest: a manifest's content
    :return: its canonical JSON (sorted keys, no spaces), without ``manifest_sha256``"""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def manifest_hash(manifest: dict[str, Any]) -> str:
    """:param manifest: a manifest's content (JSON types only)
    :return: the hash ``manifest_sha256`` holds"""
    return hashlib.sha256(canonical(manifest)).hexdigest()


def seal(manifest: dict[str, Any]) -> dict[str, Any]:
    """
    Check a manifest being written and add its own hash.

    :param manifest: the content, without ``manifest_sha256``
    :return: the content to write (JSON types only, hash included), checked against :class:`Manifest`
    :raises SmoothRLError: when the content breaks the layout (a bug in the exporter)
    """
    content = json.loads(json.dumps(manifest))  # JSON types only, as it will be read back
    content["manifest_sha256"] = manifest_hash(content)
    read_manifest(content, "<new manifest>")
    return content


def read_manifest(content: Any, where: str) -> Manifest:
    """
    Validate a manifest whole, then its own hash.

    :param content: the parsed ``manifest.json``
    :param where: its path, for messages
    :return: the model
    :raises SmoothRLError: one line naming the first problem and what to do
    """
    if not isinstance(content, dict):
        raise SmoothRLError(f"{where} is not a manifest (a JSON object); export the run again")
    version = content.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise SmoothRLError(
            f"{where} has layout version {version!r}, this runtime reads {MANIFEST_VERSION}; "
            "export the run again with this smoothrl"
        )
    try:
        model = Manifest.model_validate(content)
    except ValidationError as e:
        error = e.errors()[0]
        loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-")) or "the manifest"
        msg = str(error["msg"]).removeprefix("Value error, ")
        raise SmoothRLError(f"{where}: {loc}: {msg}; export the run again") from None
    if manifest_hash(content) != model.manifest_sha256:
        raise SmoothRLError(
            f"{where} was changed after export (its manifest_sha256 does not match); export the run again"
        )
    return model
