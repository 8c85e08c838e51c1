"""The scenarios of tests/load/: read them, scale them, and time their phases.

One variable, ``LOAD_SCALE`` (``--scale``), shrinks a scenario for a quick run: it multiplies the
number of users and every duration by the same factor — phase lengths, each user's shift and
session, and the pauses between a user's actions — so arrival rates and messages per second
stay those of the full run (a time-lapse of it with fewer users). Timeouts are not scaled.
``LOAD_USERS`` sets the number of concurrent users outright (the ceiling search), and
``LOAD_DURATION`` the length of the sustained part in seconds (a 30-minute soak).

Conventions the scenario files follow, relied on here:

- ``config.variables.users``: the users the phases bring (the report's targets refer to it);
- variables named ``…Seconds`` are durations and scale with time, except ``…TimeoutSeconds``;
- ``sustainSeconds`` (or else a phase named ``sustained``) is what ``LOAD_DURATION`` sets; the
  user's ``holdSeconds`` grows or shrinks with it;
- ``targets``: the pass/fail targets (see :mod:`tools.load.evaluate`), ignored by Artillery.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tools.load import LOAD_DIR, SCENARIOS

#: Shortest pause between two actions of one user after scaling (keeps a connection well under
#: the gateway's 100 messages/s rate limit).
MIN_ACTION_SECONDS = 0.05
#: Shortest shift, session or sustained part after scaling.
MIN_SECONDS = 0.1
#: Variables that are durations of a user's actions, with the floor above.
ACTION_VARIABLES = (
    "updateEverySeconds",
    "heartbeatEverySeconds",
    "lockEverySeconds",
    "lockHoldSeconds",
)


class ScenarioError(ValueError):
    """A scenario file or a scaling request that cannot be run."""


@dataclass(frozen=True)
class PhaseWindow:
    """When a phase runs, in seconds from the first arrival."""

    name: str
    start: float
    end: float
    arrivals: float


@dataclass
class Scenario:
    name: str
    path: Path
    phases: list[dict[str, Any]]
    variables: dict[str, Any]
    targets: dict[str, Any]
    #: What was applied: {"scale": s, "users": n or None, "duration": d or None, "variables": {…}}
    scaling: dict[str, Any] = field(default_factory=dict)

    @property
    def users(self) -> int:
        return int(self.variables.get("users", 0))

    def number(self, value: object) -> float:
        """A target value: a number, or the name of one of the scenario's variables."""
        if isinstance(value, bool):
            raise ScenarioError(f"{self.name}: expected a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str) and value in self.variables:
            return float(self.variables[value])
        raise ScenarioError(f"{self.name}: {value!r} is neither a number nor a variable")

    def windows(self) -> list[PhaseWindow]:
        """Each phase's start and end, from the first arrival, and the users it brings."""
        windows, clock = [], 0.0
        for index, phase in enumerate(self.phases):
            length = float(phase.get("pause", phase.get("duration", 0)))
            windows.append(
                PhaseWindow(
                    str(phase.get("name", f"phase {index + 1}")),
                    clock,
                    clock + length,
                    _arrivals(phase),
                )
            )
            clock += length
        return windows

    def expected_seconds(self) -> float:
        """Last arrival plus one full shift: how long the run should take."""
        last_arrival = self.windows()[-1].end if self.phases else 0.0
        return last_arrival + float(self.variables.get("holdSeconds", 0))

    def overrides(self) -> dict[str, Any]:
        """Artillery's --overrides: the phases and variables of this (possibly scaled) run."""
        return {"config": {"phases": self.phases, "variables": self.variables}}


def path_of(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in {".yml", ".yaml"}:
        return candidate.resolve()
    if name not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {name!r}: one of {', '.join(SCENARIOS)}")
    return LOAD_DIR / f"{name}.yml"


def load(name: str) -> Scenario:
    """Read tests/load/<name>.yml (or a path to another scenario file)."""
    path = path_of(name)
    document = yaml.safe_load(path.read_text())
    config = document.get("config") or {}
    phases = config.get("phases")
    if not isinstance(phases, list) or not phases:
        raise ScenarioError(f"{path}: config.phases is missing")
    return Scenario(
        name=path.stem,
        path=path,
        phases=copy.deepcopy(phases),
        variables=dict(config.get("variables") or {}),
        targets=dict(document.get("targets") or {}),
        scaling={"scale": 1.0, "users": None, "duration": None},
    )


def scaled(
    scenario: Scenario,
    scale: float = 1.0,
    users: int | None = None,
    duration: float | None = None,
) -> Scenario:
    """A copy of ``scenario`` with users times ``scale`` (or exactly ``users``) and time times ``scale``,
    then the sustained part set to ``duration`` seconds when given."""
    if not scale > 0:
        raise ScenarioError(f"scale must be positive, got {scale}")
    if users is not None and users < 1:
        raise ScenarioError(f"users must be at least 1, got {users}")
    base_users = scenario.users
    if users is not None and not base_users:
        raise ScenarioError(f"{scenario.name} has no `users` variable to scale from")
    user_factor = users / base_users if users is not None else scale
    time_factor = scale

    phases = [_scale_phase(p, user_factor, time_factor) for p in scenario.phases]
    variables = dict(scenario.variables)
    for name, value in scenario.variables.items():
        if name.endswith("Seconds") and not name.endswith("TimeoutSeconds"):
            seconds = float(value) * time_factor
            floor = MIN_ACTION_SECONDS if name in ACTION_VARIABLES else MIN_SECONDS
            variables[name] = _tidy(max(floor, seconds))
    if base_users:
        counted = [p["arrivalCount"] for p in phases if "arrivalCount" in p]
        all_counted = len(counted) == sum(1 for p in phases if "pause" not in p)
        variables["users"] = (
            int(sum(counted)) if all_counted else max(1, round(base_users * user_factor))
        )
    result = Scenario(
        scenario.name,
        scenario.path,
        phases,
        variables,
        copy.deepcopy(scenario.targets),
        {"scale": scale, "users": users, "duration": duration},
    )
    if duration is not None:
        _set_duration(result, duration)
    _keep_everyone_for_the_sustained_part(result)
    return result


def _keep_everyone_for_the_sustained_part(scenario: Scenario) -> None:
    """Rounding phases up to whole seconds can eat the margin between the last arrival plus the
    sustained part and the end of each user's shift: give it back (2 to 60 s, so that a scaled-down
    run still spans a few of the runner's samples past the sustained part)."""
    variables = scenario.variables
    if "holdSeconds" not in variables or "sustainSeconds" not in variables:
        return
    sustain = float(variables["sustainSeconds"])
    needed = scenario.windows()[-1].end + sustain + min(60.0, max(2.0, 0.1 * sustain))
    if float(variables["holdSeconds"]) < needed:
        variables["holdSeconds"] = _tidy(needed)


def _scale_phase(phase: dict[str, Any], user_factor: float, time_factor: float) -> dict[str, Any]:
    result = dict(phase)
    for key in ("duration", "pause"):
        if key in result:
            result[key] = max(1, round(float(result[key]) * time_factor))
    if "arrivalCount" in result:
        result["arrivalCount"] = max(1, round(float(result["arrivalCount"]) * user_factor))
    rate_factor = user_factor / time_factor
    for key in ("arrivalRate", "rampTo"):
        if key in result:
            result[key] = _tidy(float(result[key]) * rate_factor)
    if "maxVusers" in result:
        result["maxVusers"] = max(1, math.ceil(float(result["maxVusers"]) * user_factor))
    return result


def _set_duration(scenario: Scenario, seconds: float) -> None:
    if seconds < 1:
        raise ScenarioError(f"duration must be at least 1 s, got {seconds}")
    variables = scenario.variables
    if "sustainSeconds" in variables:
        delta = seconds - float(variables["sustainSeconds"])
        variables["sustainSeconds"] = _tidy(seconds)
        if "holdSeconds" in variables:
            variables["holdSeconds"] = _tidy(max(1.0, float(variables["holdSeconds"]) + delta))
        return
    for phase in scenario.phases:
        if phase.get("name") == "sustained":
            phase["duration"] = max(1, round(seconds))
            return
    raise ScenarioError(f"{scenario.name} has neither sustainSeconds nor a `sustained` phase")


def _arrivals(phase: dict[str, Any]) -> float:
    if "arrivalCount" in phase:
        return float(phase["arrivalCount"])
    duration = float(phase.get("duration", 0))
    rate = float(phase.get("arrivalRate", 0))
    return duration * (rate + float(phase.get("rampTo", rate))) / 2


def _tidy(value: float) -> float | int:
    """Integers stay integers in the overrides (and in the report)."""
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def from_record(record: dict[str, Any], root: Path) -> Scenario:
    """The scenario as a run recorded it in run.json (phases, variables and targets as run)."""
    path = Path(record["file"])
    return Scenario(
        name=str(record["name"]),
        path=path if path.is_absolute() else root / path,
        phases=list(record["phases"]),
        variables=dict(record["variables"]),
        targets=dict(record.get("targets") or {}),
        scaling=dict(record.get("scaling") or {"scale": 1.0, "users": None, "duration": None}),
    )
