"""The deploy workflow: actionlint clean, and the pipeline the seed asks for (DEVOPS-001.2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.loadtools.test_workflow import actionlint

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"


def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def test_actionlint_is_clean() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_deploys_after_ci_passes_on_main_then_retires_the_standby() -> None:
    spec = workflow()
    trigger = spec[True]  # PyYAML reads the key `on` as True
    assert trigger["workflow_run"] == {
        "workflows": ["ci"],
        "types": ["completed"],
        "branches": ["main"],
    }
    jobs = spec["jobs"]
    assert "conclusion == 'success'" in jobs["build"]["if"]
    assert jobs["deploy"]["needs"] == "build"
    assert jobs["retire-standby"]["needs"] == "deploy"
    assert jobs["retire-standby"]["environment"].endswith("-standby")  # its wait timer: 30 min
    assert jobs["deploy"]["timeout-minutes"] <= 10  # the seed's "deployment < 10 minutes"
    assert spec["concurrency"]["cancel-in-progress"] is False  # never cut a shift in half
    commands = " ".join(step.get("run", "") for step in jobs["deploy"]["steps"])
    assert "python -m tools.deploy deploy" in commands
    assert "docker push" in " ".join(step.get("run", "") for step in jobs["build"]["steps"])


def test_the_controller_runs_with_the_projects_pinned_versions() -> None:
    pinned = dict(re.findall(r'"([a-z0-9]+)==([0-9.]+)"', (ROOT / "pyproject.toml").read_text()))
    installs = re.findall(r'"([a-z0-9]+)==([0-9.]+)"', WORKFLOW.read_text())
    assert installs
    for name, version in installs:
        assert pinned[name] == version, name
