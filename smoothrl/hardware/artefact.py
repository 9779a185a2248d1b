"""A policy artefact (``policy.onnx`` + ``manifest.json``, written by ``smoothrl export``) at run time.

numpy and onnxruntime only. :class:`Artefact` checks the manifest and the file's hash, and
:class:`ArtefactPolicy` acts: it builds the observation the policy expects from the sensors'
(appending the action history for runs trained with ``smoothness_reward``; the history restarts
at zero at every activation, as at an episode start) and returns the action.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smoothrl.errors import SmoothRLError
from smoothrl.hardware.manifest import MANIFEST, MANIFEST_VERSION, Manifest, read_manifest
from smoothrl.metrics import normalize_actions

__all__ = ["MANIFEST", "MANIFEST_VERSION", "Artefact", "ArtefactPolicy"]


@dataclass(frozen=True)
class Artefact:
    """
    A loaded artefact directory.

    :param path: the directory
    :param manifest: its ``manifest.json``, as read
    :param model: the same, validated (:class:`smoothrl.hardware.manifest.Manifest`)
    """

    path: Path
    manifest: dict[str, Any]
    model: Manifest

    @classmethod
    def load(cls, path: str | Path) -> Artefact:
        """
        :param path: an artefact directory written by ``smoothrl export``
        :return: the artefact
        :raises SmoothRLError: for a missing, foreign or tampered artefact
        """
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise SmoothRLError(
                f"{path} has no {MANIFEST}, so it is not a policy artefact; run `smoothrl export` first"
            )
        try:
            content = json.loads(manifest_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise SmoothRLError(f"{manifest_path} is not valid JSON; export the run again") from None
        model = read_manifest(content, str(manifest_path))
        policy_file = path / model.file
        if not policy_file.is_file():
            raise SmoothRLError(f"{path} lacks {model.file}; export the run again")
        if hashlib.sha256(policy_file.read_bytes()).hexdigest() != model.sha256:
            raise SmoothRLError(f"{policy_file} does not match its manifest's hash; export the run again")
        if model.exogenous is not None:
            weather = path / model.exogenous.weather
            if (
                not weather.is_file()
                or hashlib.sha256(weather.read_bytes()).hexdigest() != model.exogenous.weather_sha256
            ):
                raise SmoothRLError(f"{weather} is missing or does not match its manifest's hash; export the run again")
        return cls(path, content, model)

    @property
    def discrete(self) -> bool:
        """Whether the action is an index."""
        return self.manifest["action_space"]["type"] == "Discrete"

    @property
    def action_dim(self) -> int:
        """Command channels."""
        space = self.manifest["action_space"]
        return 1 if self.discrete else int(np.prod(space["shape"]))

    @property
    def sensors(self) -> int:
        """Observation channels the hardware provides (the policy's input minus the augmentations)."""
        return int(self.manifest["observation_space"]["sensors"])

    @property
    def channels(self) -> list[tuple[str, str]]:
        """``(name, unit)`` of every observation channel the hardware provides, in order."""
        return [(c.name, c.unit) for c in self.model.observation_space.channels]

    def exogenous(self) -> dict[str, Any] | None:
        """:return: the bundled weather file (its path) and tariff, as a profile's ``exogenous`` section, or ``None``"""
        bundle = self.model.exogenous
        if bundle is None:
            return None
        return {
            "weather": str(self.path / bundle.weather),
            "tariff": dict(bundle.tariff),
            "step_minutes": bundle.step_minutes,
        }

    @property
    def control_period_s(self) -> float | None:
        """The env's step, when it has one."""
        return self.manifest.get("control_period_s")

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """:return: ``(low, high)`` of the action (indices ``start .. start + n - 1`` when discrete)"""
        space = self.manifest["action_space"]
        if self.discrete:
            return np.array([space["start"]], dtype=float), np.array([space["start"] + space["n"] - 1], dtype=float)
        return np.asarray(space["low"], dtype=float), np.asarray(space["high"], dtype=float)

    def policy(self) -> ArtefactPolicy:
        """:return: a fresh policy (its own onnxruntime session and action history)"""
        if self.manifest["format"] != "onnx":
            raise SmoothRLError(
                f"{self.path} holds a {self.manifest['format']} graph; the runtime loads ONNX: export with @format onnx"
            )
        return ArtefactPolicy(self)


class ArtefactPolicy:
    """
    Sensor observation -> action through the artefact's ONNX graph (one onnxruntime session).

    :param artefact: the loaded artefact
    """

    def __init__(self, artefact: Artefact) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one decision per period: threads cost more than they give
        options.inter_op_num_threads = 1
        self.artefact = artefact
        self.session = ort.InferenceSession(
            str(artefact.path / artefact.manifest["file"]), options, providers=["CPUExecutionProvider"]
        )
        self.input_name = artefact.manifest["input"]["name"]
        self._check_graph()
        history = [a for a in artefact.manifest["augmentations"] if a["kind"] == "action_history"]
        self.history_k = int(history[0]["k"]) if history else 0
        self.history_dim = int(history[0]["dim"]) if history else 0
        self.low, self.high = artefact.action_bounds()
        self.reset()

    def _check_graph(self) -> None:
        """Refuse a graph whose input or output is not what the manifest says."""
        model = self.artefact.model
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        expected = "tensor(int64)" if self.artefact.discrete else "tensor(float)"
        size = inputs[0].shape[-1] if inputs and inputs[0].shape else None
        if (
            len(inputs) != 1
            or inputs[0].name != model.input.name
            or (isinstance(size, int) and size != model.input.size)
            or not outputs
            or outputs[0].type != expected
        ):
            got = f"{inputs[0].name if inputs else '?'} -> {outputs[0].type if outputs else '?'}"
            raise SmoothRLError(
                f"{self.artefact.path}: the graph ({got}) does not take and give what the manifest says "
                f"({model.input.name}[{model.input.size}] -> {expected}); export the run again"
            )

    def reset(self) -> None:
        """Forget the action history (at activation: as at an episode start)."""
        self.history = np.zeros((self.history_k, self.history_dim), dtype=np.float32)

    def observation(self, sensors: np.ndarray) -> np.ndarray:
        """
        :param sensors: ``(sensors,)`` raw observation from the hardware
        :return: ``(1, input size)`` what the graph takes
        """
        sensors = np.asarray(sensors, dtype=np.float32).ravel()
        if sensors.size != self.artefact.sensors:
            raise SmoothRLError(
                f"the hardware gave {sensors.size} observation values, the policy expects {self.artefact.sensors}"
            )
        if self.history_k == 0:
            return sensors[None]
        return np.concatenate([sensors, self.history.ravel()])[None]

    def act(self, sensors: np.ndarray) -> np.ndarray:
        """
        :param sensors: raw observation
        :return: the policy's action (``(dim,)`` float64, or ``(1,)`` index), before the safety filter
        """
        out = self.session.run(None, {self.input_name: self.observation(sensors)})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def sent(self, command: np.ndarray) -> None:
        """
        Record the command the hardware received, for the action history (normalized to ``[0, 1]``
        by the action bounds, as ``info["action_unit"]`` was in training).

        :param command: what was written
        """
        if self.history_k == 0:
            return
        unit = normalize_actions(
            np.clip(np.asarray(command, dtype=np.float64).ravel(), self.low, self.high)[None], self.low, self.high
        )
        self.history = np.concatenate([self.history[1:], unit.astype(np.float32)])
