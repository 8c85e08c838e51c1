"""`make infra-cost`: tools/infra_cost.py prices every environment resource by resource."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from .conftest import ENVIRONMENTS, REPO


def test_cost_estimate_every_environment(ic: Any) -> None:
    prices = json.loads(ic.latest_price_file().read_text())
    usage = json.loads((ic.TERRAFORM / "pricing" / "usage-assumptions.json").read_text())
    totals = {}
    for env in ENVIRONMENTS:
        lines = ic.estimate(env, prices, usage)
        assert len(lines) > 20
        assert all(line.monthly >= 0 for line in lines)
        totals[env] = sum(line.monthly for line in lines)
    assert 0 < totals["dev"] < totals["staging"] < totals["prod"]


def test_prod_estimate_prices_the_seed_sizes(ic: Any) -> None:
    prices = json.loads(ic.latest_price_file().read_text())
    usage = json.loads((ic.TERRAFORM / "pricing" / "usage-assumptions.json").read_text())
    lines = {line.resource: line for line in ic.estimate("prod", prices, usage)}
    assert lines["aws_nat_gateway"].detail.startswith("3 x")
    assert "db.t3.medium multi-az" in lines["aws_db_instance (primary)"].detail
    assert "100 GB gp3" in lines["aws_db_instance (primary storage)"].detail
    assert "3 x mq.m5.large" in lines["aws_mq_broker"].detail
    assert "6 tasks x 1 vCPU/2 GB" in lines["aws_ecs_service (blue+green)"].detail


def test_cli_prints_totals() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "infra_cost.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=120,
    )
    assert "as of" in proc.stdout
    for env in ENVIRONMENTS:
        assert f"== {env} ==" in proc.stdout
    assert proc.stdout.count("TOTAL") == 3
