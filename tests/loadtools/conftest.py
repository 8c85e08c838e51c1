"""Shared helpers of the load-tooling tests (tests/load, tools/load, the load workflow).

Tests that need Node or the npm packages of tests/load call :func:`require`: locally a missing
tool skips the test with the command that installs it; in CI (``CI=true``) it fails, because a
skipped load smoke there would hide a missing install step (``make test-setup`` runs ``npm ci``
in tests/load through mk/load.mk).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tools.load import LOAD_DIR

from tests.support.requirements import require

NODE_MODULES = LOAD_DIR / "node_modules"


def node() -> str:
    binary = shutil.which("node")
    require(binary is not None, "node is not installed (Node 20+ runs tests/load)")
    assert binary is not None
    return binary


def require_packages(*packages: str) -> str:
    """node, after checking that tests/load/node_modules has ``packages``."""
    binary = node()
    missing = [p for p in packages if not (NODE_MODULES / p / "package.json").exists()]
    require(
        not missing,
        f"tests/load/node_modules lacks {', '.join(missing)}: run `make test-setup` (npm ci)",
    )
    return binary


def run_node(
    script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> Any:
    """Run a CommonJS snippet in tests/load and parse the JSON it prints last."""
    binary = require_packages("yjs", "ws", "artillery")
    result = subprocess.run(
        [binary, "-e", script, *args],
        cwd=LOAD_DIR,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def results_root(tmp_path: Path) -> Path:
    root = tmp_path / "load-results"
    root.mkdir()
    return root
