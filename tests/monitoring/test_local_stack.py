"""`make monitoring` / `make monitoring-stop`: the developer's stack starts against a running
gateway, prints where to look, keeps its PIDs, and stops exactly what it started."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools.monitoring import ROOT, api
from tools.monitoring.wait import poll_until

from tests.monitoring.conftest import need, run
from tests.support.gateway_process import GatewayProcess


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    process = GatewayProcess(tmp_path / "gateway").start()
    yield process
    process.terminate()


def cli(directory: Path, *args: str) -> tuple[int, str]:
    result = run(
        [sys.executable, "-m", "tools.monitoring", "--dir", str(directory), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return result.returncode, result.stdout + result.stderr


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() != b""  # a zombie has no command line
    except OSError:
        return False


@pytest.mark.e2e
def test_up_status_down(tmp_path: Path, gateway: GatewayProcess) -> None:
    need("prometheus", "prometheus-alertmanager")
    directory = tmp_path / "monitoring"
    ports = ("--prometheus-port=0", "--alertmanager-port=0", "--receiver-port=0")
    code, out = cli(directory, "up", f"--gateway=127.0.0.1:{gateway.port}", *ports)
    pids: list[int] = []
    try:
        assert code == 0, out
        state = json.loads((directory / "state.json").read_text())
        pids = [p["pid"] for p in state["processes"]]
        assert {p["name"] for p in state["processes"]} == {"receiver", "alertmanager", "prometheus"}
        for proc in state["processes"]:
            assert (directory / f"{proc['name']}.pid").read_text().strip() == str(proc["pid"])
        for url in state["urls"].values():
            assert url.startswith("http://127.0.0.1:")
            assert url in out

        prometheus = api.Prometheus(state["urls"]["prometheus"])
        poll_until(
            lambda: any(
                t["labels"]["job"] == "collabgate-gateway" and t["health"] == "up"
                for t in prometheus.targets()
            ),
            timeout=40,
            what="the gateway scraped",
        )
        prometheus.close()

        code, out = cli(directory, "up", f"--gateway=127.0.0.1:{gateway.port}", *ports)
        assert code == 0
        assert "already running" in out

        code, out = cli(directory, "status")
        assert code == 0, out
        assert "collabgate" in out, out
    finally:
        code, out = cli(directory, "down")
    assert code == 0, out
    poll_until(
        lambda: not any(alive(pid) for pid in pids), timeout=20, what="the stack's processes gone"
    )
    assert not (directory / "state.json").exists()
    code, out = cli(directory, "down")
    assert code == 0
    assert "not running" in out


def test_make_test_setup_installs_the_monitoring_tools() -> None:
    result = run(["make", "-n", "test-setup"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "command -v" in result.stdout
    assert "prometheus-alertmanager" in result.stdout


def test_make_monitoring_targets_exist() -> None:
    result = run(["make", "-n", "monitoring", "monitoring-stop", "monitoring-check"], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "-m tools.monitoring --dir var/monitoring up --gateway 127.0.0.1:8080" in out
    assert "-m tools.monitoring --dir var/monitoring down" in out
    for command in (
        "promtool check rules",
        "promtool test rules",
        "amtool check-config",
        "tools/dashboards.py --check",
    ):
        assert command in out
