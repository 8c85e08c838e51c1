"""The scenario files say what the seed (DEVOPS-001.4) asks, and scaling keeps their shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from tools.load import LOAD_DIR, SCENARIOS, runner
from tools.load import scenario as scenarios

FLOW = ["connect", "joinChart", "work", "leave"]


def document(name: str) -> dict[str, object]:
    loaded = yaml.safe_load((LOAD_DIR / f"{name}.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_runs_the_clinician_flow_with_the_processor(name: str) -> None:
    config = document(name)["config"]
    assert isinstance(config, dict)
    assert config["processor"] == "./processor.js"
    assert config["target"].startswith("ws://127.0.0.1:")
    flows: Any = document(name)["scenarios"]
    (scenario,) = flows
    (loop,) = scenario["flow"]
    assert [step["function"] for step in loop["loop"]] == FLOW
    assert loop["whileTrue"] == "onShift"
    processor = (LOAD_DIR / "processor.js").read_text()
    for function in [*FLOW, "onShift"]:
        assert f"async function {function}(" in processor or f"function {function}(" in processor


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_has_targets_and_rooms_of_five(name: str) -> None:
    plan = scenarios.load(name)
    assert plan.variables["roomSize"] == 5
    assert plan.targets.get("gateway_alive") is True
    assert "error_rate" in plan.targets
    assert "collabgate.connect_failed" in plan.targets["must_be_zero"]


def test_baseline_phases_are_the_seed_table() -> None:
    phases = scenarios.load("baseline").phases
    assert [(p["name"], p["duration"], p["arrivalRate"], p.get("rampTo")) for p in phases] == [
        ("warm-up", 60, 10, None),
        ("ramp-up", 120, 1, 100),
        ("sustained", 300, 100, None),
        ("ramp-down", 60, 100, 0),
    ]
    targets = scenarios.load("baseline").targets
    assert targets["error_rate"] == 0.001
    assert targets["session_survival"] == 0.999
    assert all(limit == 200 for limit in targets["p99_ms"].values())


def test_stress_is_a_thousand_users_with_the_seed_mix_for_five_minutes() -> None:
    plan = scenarios.load("stress")
    assert plan.phases == [{"name": "ramp-up", "duration": 60, "arrivalCount": 1000}]
    v = plan.variables
    assert v["users"] == 1000
    assert v["heartbeatEverySeconds"] == 30
    assert 60 / v["updateEverySeconds"] == 10  # CRDT updates a minute
    assert 60 / v["lockEverySeconds"] == 2  # lock acquisitions a minute
    # Everybody is connected from the last arrival to the first departure: 60 s → holdSeconds.
    assert v["holdSeconds"] - 60 >= v["sustainSeconds"] >= 300
    assert plan.targets["concurrent_users"] == {
        "at_least": "users",
        "for_seconds": "sustainSeconds",
    }
    assert set(plan.targets["p99_ms"]) == {
        "collabgate.update_ack_ms",
        "collabgate.peer_delivery_ms",
        "collabgate.lock_acquire_ms",
    }
    assert "collabgate.dropped" in plan.targets["must_be_zero"]


def test_spike_brings_nine_hundred_within_ten_seconds_of_a_hundred() -> None:
    plan = scenarios.load("spike")
    windows = plan.windows()
    assert [(w.name, w.arrivals) for w in windows] == [
        ("steady", 100),
        ("settle", 0),
        ("spike", 900),
    ]
    spike = windows[-1]
    assert spike.end - spike.start == 10
    assert plan.targets["recovery"]["within_seconds"] == 60
    # The first hundred are still there while the recovery is judged.
    assert plan.variables["holdSeconds"] >= spike.end + plan.targets["recovery"]["within_seconds"]


def test_soak_is_the_stress_mix_for_eight_hours_with_reconnects() -> None:
    stress, soak = scenarios.load("stress"), scenarios.load("soak")
    for name in (
        "users",
        "updateEverySeconds",
        "heartbeatEverySeconds",
        "lockEverySeconds",
        "lockHoldSeconds",
        "roomSize",
    ):
        assert soak.variables[name] == stress.variables[name], name
    assert soak.variables["sustainSeconds"] == 8 * 3600
    assert soak.variables["sessionSeconds"] < soak.variables["sustainSeconds"]
    assert "memory_slope" in soak.targets


def test_scale_shrinks_users_and_time_alike_and_keeps_rates() -> None:
    plan = scenarios.scaled(scenarios.load("stress"), 0.1)
    assert plan.phases == [{"name": "ramp-up", "duration": 6, "arrivalCount": 100}]
    assert plan.variables["users"] == 100
    assert plan.variables["holdSeconds"] == 42
    assert plan.variables["updateEverySeconds"] == 0.6
    assert plan.variables["replyTimeoutSeconds"] == 10  # timeouts are not scaled
    baseline = scenarios.scaled(scenarios.load("baseline"), 0.1)
    assert [p["duration"] for p in baseline.phases] == [6, 12, 30, 6]
    assert [p["arrivalRate"] for p in baseline.phases] == [10, 1, 100, 100]


def test_scale_has_floors_for_artillery_and_the_rate_limit() -> None:
    plan = scenarios.scaled(scenarios.load("spike"), 0.001)
    assert all(p.get("duration", p.get("pause", 0)) >= 1 for p in plan.phases)
    assert all(p.get("arrivalCount", 1) >= 1 for p in plan.phases)
    assert plan.variables["updateEverySeconds"] >= scenarios.MIN_ACTION_SECONDS


def test_users_sets_the_concurrency_outright_and_duration_the_sustained_part() -> None:
    plan = scenarios.scaled(scenarios.load("stress"), users=4000, duration=120)
    assert plan.phases[0]["arrivalCount"] == 4000
    assert plan.phases[0]["duration"] == 60
    assert plan.variables["users"] == 4000
    assert plan.variables["sustainSeconds"] == 120
    assert plan.variables["holdSeconds"] == 240  # still 60 s of ramp-up + 60 s of margin
    soak = scenarios.scaled(scenarios.load("soak"), duration=1800)
    assert soak.variables["holdSeconds"] == 1920
    baseline = scenarios.scaled(scenarios.load("baseline"), duration=30)
    assert [p["duration"] for p in baseline.phases] == [60, 120, 30, 60]


def test_bad_requests_are_refused() -> None:
    with pytest.raises(scenarios.ScenarioError):
        scenarios.load("nonsense")
    with pytest.raises(scenarios.ScenarioError):
        scenarios.scaled(scenarios.load("stress"), 0)
    with pytest.raises(scenarios.ScenarioError):
        scenarios.scaled(scenarios.load("stress"), duration=0.5)


def test_overrides_round_trip_through_json() -> None:
    plan = scenarios.scaled(scenarios.load("soak"), 0.01, duration=20)
    overrides = json.loads(json.dumps(plan.overrides()))
    assert overrides["config"]["phases"] == plan.phases
    assert overrides["config"]["variables"]["sustainSeconds"] == 20


def test_make_load_variables_reach_the_runner() -> None:
    options = runner.environment_options(
        {
            "LOAD_SCALE": "0.5",
            "LOAD_USERS": "3000",
            "LOAD_DURATION": "1800",
            "LOAD_VARIABLES": '{"sessionSeconds": 60}',
            "LOAD_PROFILE_SECONDS": "",
        }
    )
    assert options == {
        "scale": 0.5,
        "users": 3000,
        "duration": 1800.0,
        "variables": {"sessionSeconds": 60},
    }
    with pytest.raises(ValueError, match="JSON object"):
        runner.environment_options({"LOAD_VARIABLES": "[1]"})
