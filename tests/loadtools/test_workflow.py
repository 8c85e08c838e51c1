"""The load workflow: actionlint clean, runs every scenario on release branches, keeps the reports."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from tools.load import LOAD_DIR, ROOT, SCENARIOS

from tests.loadtools.conftest import require_packages

WORKFLOW = ROOT / ".github" / "workflows" / "load.yml"


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = require_packages("actionlint")
    return subprocess.run(
        [node, str(LOAD_DIR / "actionlint.js"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_actionlint_is_clean() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problem(s)" in result.stdout


def test_actionlint_catches_mistakes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text().replace("${{ matrix.scenario }}", "${{ matrix.scenarios }}", 1)
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert "scenarios" in result.stdout


def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_runs_every_scenario_on_release_branches() -> None:
    document = workflow()
    triggers = document[True]  # YAML 1.1 reads the key `on` as a boolean
    assert triggers["push"]["branches"] == ["release/**"]
    assert "workflow_dispatch" in triggers
    matrix = document["jobs"]["load"]["strategy"]["matrix"]["scenario"]
    for name in SCENARIOS:
        assert f'"{name}"' in matrix
    steps = document["jobs"]["load"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert 'make load SCENARIO="$SCENARIO"' in runs
    assert "make venv tests/load/node_modules/.stamp" in runs


def test_reports_are_archived_even_when_a_target_fails() -> None:
    steps = workflow()["jobs"]["load"]["steps"]
    archive = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert archive["if"] == "always()"
    assert archive["with"]["path"] == "var/load-results/"
    env = workflow()["jobs"]["load"]["env"]
    assert env["ARTILLERY_DISABLE_TELEMETRY"] == "true"
    assert env["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] == "1"
    assert "LOAD_RESULTS_BUCKET" in env


def test_least_privilege() -> None:
    assert workflow()["permissions"] == {"contents": "read", "id-token": "write"}
