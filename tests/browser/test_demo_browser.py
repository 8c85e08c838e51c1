"""The /demo page in two headless Chromium windows (tests/browser/demo.test.mjs, Playwright).

Screenshots of both windows are saved under var/test-output/browser/.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.interop.node_peers import CHROMIUM, NODE_MODULES, node_binary, require
from tests.support.gateway_process import GatewayProcess

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parents[1] / "var" / "test-output" / "browser"


def test_two_users_in_two_browser_windows(tmp_path: Path) -> None:
    node = node_binary()
    require((NODE_MODULES / "playwright-core").is_dir(), "playwright-core is not installed")
    require(CHROMIUM.exists(), f"{CHROMIUM} is missing: `make test-setup` installs chromium")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for old in OUTPUT.glob("demo-*.png"):
        old.unlink()
    gateway = GatewayProcess(tmp_path, env={"COLLABGATE_DEMO_ENABLED": "true"}).start()
    try:
        result = subprocess.run(
            [node, "--test", "--test-reporter=spec", str(HERE / "demo.test.mjs")],
            env={
                **os.environ,
                "DEMO_BASE_URL": gateway.base_url,
                "DEMO_SCREENSHOT_DIR": str(OUTPUT),
            },
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        gateway.terminate()
    gateway_log = "\n".join(gateway.lines[-60:])
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- gateway ---\n{gateway_log}"
    assert (OUTPUT / "demo-alice.png").stat().st_size > 0
    assert (OUTPUT / "demo-bob.png").stat().st_size > 0
