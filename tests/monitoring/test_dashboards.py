"""Grafana dashboards: generated from tools/dashboards.py, structurally sound, valid PromQL over
metrics that exist, and provisioned against the datasource they name."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tools.monitoring import ROOT

from tests.monitoring.conftest import DASHBOARDS, need, recording_rules, run
from tests.monitoring.promql import is_known, metric_names, selector_of_variable

GENERATOR = ROOT / "tools" / "dashboards.py"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
EXPECTED = {
    "collabgate-websocket.json",
    "collabgate-redis.json",
    "collabgate-rabbitmq.json",
    "collabgate-postgresql.json",
}
PANEL_TYPES = {"row", "timeseries", "gauge", "stat", "barchart", "state-timeline"}


def boards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def expressions() -> list[tuple[str, str]]:
    found = []
    for name, board in boards().items():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                found.append(
                    (f"{name} ${variable['name']}", selector_of_variable(variable["definition"]))
                )
        for panel in panels(board):
            for target in panel["targets"]:
                found.append((f"{name} {panel['title']} {target['refId']}", target["expr"]))
    return found


def test_checked_in_json_is_what_the_generator_produces() -> None:
    result = run([sys.executable, str(GENERATOR), "--check"])
    assert result.returncode == 0, result.stderr + "\nregenerate with: python tools/dashboards.py"


def test_the_generator_writes_exactly_the_checked_in_files(tmp_path: Path) -> None:
    result = run([sys.executable, str(GENERATOR), "--out", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert {p.name for p in tmp_path.iterdir()} == EXPECTED == set(boards())
    for path in tmp_path.iterdir():
        assert path.read_text() == (DASHBOARDS / path.name).read_text(), path.name


def test_dashboards_refresh_every_10_seconds_and_have_unique_uids() -> None:
    uids = [b["uid"] for b in boards().values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards().items():
        assert board["refresh"] == "10s", name
        assert board["title"].startswith("collabgate / "), name
        assert "collabgate" in board["tags"]


def test_panels_have_unique_ids_fit_the_grid_and_do_not_overlap() -> None:
    for name, board in boards().items():
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), name
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            assert panel["type"] in PANEL_TYPES, (name, panel["type"])
            pos = panel["gridPos"]
            assert pos["x"] >= 0, (name, panel["title"])
            assert pos["x"] + pos["w"] <= 24, (name, panel["title"])
            area = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not area & cells, (name, panel["title"], "overlaps")
            cells |= area


def test_every_panel_queries_the_templated_prometheus_datasource() -> None:
    for name, board in boards().items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in panels(board):
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (
                name,
                panel["title"],
            )
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"]
                assert target["expr"].strip()


def test_the_websocket_dashboard_has_the_seed_panels() -> None:
    board = boards()["collabgate-websocket.json"]
    by_title = {p["title"]: p for p in panels(board)}
    assert by_title["Active connections"]["type"] == "timeseries"
    assert "websocket_connections_total" in by_title["Active connections"]["targets"][0]["expr"]
    assert by_title["Messages/s"]["type"] == "timeseries"
    assert by_title["P99 latency"]["type"] == "gauge"
    assert "p99" in by_title["P99 latency"]["targets"][0]["expr"]
    assert by_title["Error rate"]["type"] == "timeseries"
    steps = by_title["Error rate"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 0.01} in steps
    bar = by_title["Top resource types by users"]
    assert bar["type"] == "barchart"
    assert re.search(
        r"sum by \(resource_type\) \(collabgate_room_users\{", bar["targets"][0]["expr"]
    )
    assert bar["targets"][0]["instant"] is True


def test_variables_are_only_used_as_regex_matchers() -> None:
    """`label=~"$var"` is what makes "All" (= .*) work; the live test relies on it too."""
    for where, expr in expressions():
        without_matchers = re.sub(r'=~"\$\w+"', "", expr).replace("$__rate_interval", "")
        assert "$" not in without_matchers, where


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each expression (as a recording rule) the way Prometheus will."""
    need("promtool")
    rules = [
        {"record": f"dashboard:check:{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, (_, expr) in enumerate(expressions())
    ]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(["promtool", "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_expression_uses_metrics_that_exist() -> None:
    recorded = set(recording_rules())
    unknown = {
        (where, name)
        for where, expr in expressions()
        for name in metric_names(expr)
        if not is_known(name, recorded)
    }
    assert unknown == set()


def test_provisioning_points_grafana_at_prometheus_and_at_the_dashboards() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    for board in boards().values():
        variable = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
        assert variable["current"]["value"] == source["uid"]
    assert source["jsonData"]["timeInterval"] == "15s"  # = the scrape interval

    providers = yaml.safe_load((PROVISIONING / "dashboards" / "collabgate.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_is_json_grafana_can_import(name: str) -> None:
    board = boards()[name]
    for key in ("uid", "title", "panels", "templating", "schemaVersion", "time", "refresh"):
        assert key in board, key
    assert board["id"] is None  # provisioning assigns ids
