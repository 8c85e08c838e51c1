#!/usr/bin/env python3
"""Grafana dashboards for collabgate, as code: the one source of deploy/grafana/dashboards/*.json.

    python tools/dashboards.py           write the JSON files
    python tools/dashboards.py --check   exit 1 when a checked-in file differs from this source
    python tools/dashboards.py --exprs   print every PromQL expression the dashboards use

Plain Python and the standard library only (no grafanalib): each dashboard is a list of panels
built by the small helpers below. Panel queries use the recording rules of
deploy/prometheus/rules/collabgate.rules.yml where one exists, so a panel and the alert watching
the same quantity agree to the digit. Template variables are only ever used as `label=~"$var"`
(their "All" value is `.*`), which is what tests/monitoring relies on to run every expression
against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "deploy" / "grafana" / "dashboards"

DATASOURCE_UID = "prometheus"  # the uid given in deploy/grafana/provisioning/datasources/
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
REFRESH = "10s"
RUNBOOKS_URL = "https://github.com/collabgate/collabgate/blob/main/docs/runbooks/README.md"
SCHEMA_VERSION = 39

Json = dict[str, Any]


# ------------------------------------------------------------------------------------ queries
@dataclass(frozen=True)
class Q:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False

    def target(self, ref_id: str) -> Json:
        target: Json = {
            "datasource": DATASOURCE,
            "refId": ref_id,
            "expr": self.expr,
            "legendFormat": self.legend or "__auto",
            "range": not self.instant,
            "instant": self.instant,
        }
        if self.instant:
            target["format"] = "table"
        return target


# ------------------------------------------------------------------------------------ panels
@dataclass
class Panel:
    title: str
    kind: str  # timeseries | gauge | stat | barchart | state-timeline
    queries: Sequence[Q]
    width: int = 12
    height: int = 8
    unit: str = "short"
    description: str = ""
    thresholds: Sequence[tuple[float | None, str]] = ((None, "green"),)
    threshold_line: bool = False
    stack: bool = False
    min: float | None = None
    max: float | None = None
    mappings: Sequence[Json] = ()
    options: Json = field(default_factory=dict)
    transformations: Sequence[Json] = ()

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        defaults: Json = {
            "unit": self.unit,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": color, "value": value} for value, color in self.thresholds],
            },
            "mappings": list(self.mappings),
            "color": {
                "mode": "thresholds" if self.kind in ("gauge", "stat") else "palette-classic"
            },
        }
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 20 if self.stack else 10,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"mode": "normal" if self.stack else "none", "group": "A"},
                "thresholdsStyle": {"mode": "dashed" if self.threshold_line else "off"},
            }
        options: Json = {}
        if self.kind == "timeseries":
            options = {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        elif self.kind in ("gauge", "stat"):
            options = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "orientation": "auto",
            }
            if self.kind == "gauge":
                options |= {"showThresholdLabels": False, "showThresholdMarkers": True}
            else:
                options |= {"colorMode": "background", "graphMode": "none", "textMode": "auto"}
        elif self.kind == "state-timeline":
            options = {"showValue": "auto", "mergeValues": True, "rowHeight": 0.9}
        options |= self.options
        panel: Json = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options,
            "targets": [q.target(chr(ord("A") + i)) for i, q in enumerate(self.queries)],
        }
        if self.transformations:
            panel["transformations"] = list(self.transformations)
        return panel


@dataclass
class Row:
    title: str


UP_DOWN = (
    {
        "type": "value",
        "options": {
            "0": {"text": "DOWN", "color": "red", "index": 0},
            "1": {"text": "UP", "color": "green", "index": 1},
        },
    },
)
RED_AT_ZERO = ((None, "red"), (1, "green"))


def layout(items: Sequence[Panel | Row]) -> list[Json]:
    """Place panels left to right, wrapping at Grafana's 24 columns; a Row starts a new line."""
    panels: list[Json] = []
    x = y = row_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += row_height
            panels.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            x, y, row_height = 0, y + 1, 0
            continue
        if x + item.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(item.to_json(panel_id, x, y))
        x += item.width
        row_height = max(row_height, item.height)
    return panels


# ------------------------------------------------------------------------------------ variables
def datasource_variable() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": "Prometheus", "value": DATASOURCE_UID},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def query_variable(name: str, label: str, metric: str, label_name: str) -> Json:
    definition = f"label_values({metric}, {label_name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"qryType": 1, "query": definition, "refId": f"{name}-variable"},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "options": [],
        "regex": "",
    }


def dashboard(
    uid: str, title: str, description: str, variables: list[Json], items: Sequence[Panel | Row]
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["collabgate"],
        "editable": False,
        "graphTooltip": 1,
        "refresh": REFRESH,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {"refresh_intervals": ["10s", "30s", "1m", "5m", "15m"]},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "id": None,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "Runbooks",
                "type": "link",
                "url": RUNBOOKS_URL,
                "targetBlank": True,
                "icon": "doc",
                "tooltip": "What each alert means and what to do",
            },
            {
                "title": "collabgate dashboards",
                "type": "dashboards",
                "tags": ["collabgate"],
                "asDropdown": True,
            },
        ],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": layout(items),
    }


# ------------------------------------------------------------------------------------ dashboards
GW = 'instance=~"$instance"'


def rate(metric: str, selector: str = GW, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[$__rate_interval]))"


def quantile(q: float, metric: str, selector: str = GW, by: str = "") -> str:
    keys = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({keys}) (rate({metric}_bucket{{{selector}}}[$__rate_interval])))"


def per_instance(
    title: str,
    series: str,
    description: str,
    *,
    alert_at: float | None = None,
    unit: str = "short",
    **more: Any,
) -> Panel:
    """One line per gateway instance of ``series``, from zero; with ``alert_at``, the threshold
    of the alert that watches it drawn across."""
    alert: Json = {}
    if alert_at is not None:
        alert = {"thresholds": ((None, "green"), (alert_at, "red")), "threshold_line": True}
    return Panel(
        title,
        "timeseries",
        [Q(f"{series}{{{GW}}}", "{{instance}}")],
        unit=unit,
        description=description,
        min=0,
        **alert,
        **more,
    )


def websocket_dashboard() -> Json:
    latency_thresholds = ((None, "green"), (0.25, "yellow"), (0.5, "red"))
    items: list[Panel | Row] = [
        Row("At a glance"),
        Panel(
            "Active connections",
            "timeseries",
            [
                Q(f"sum(websocket_connections_total{{{GW}}})", "all instances"),
                Q(f"websocket_connections_total{{{GW}}}", "{{instance}}"),
            ],
            width=8,
            description="Open WebSocket connections (websocket_connections_total). Info alert above 1000 fleet-wide.",
            thresholds=((None, "green"), (1000, "blue")),
            threshold_line=True,
            min=0,
        ),
        Panel(
            "Messages/s",
            "timeseries",
            [
                Q(f"sum(instance:websocket_messages_received:rate1m{{{GW}}})", "received"),
                Q(f"sum(instance:websocket_messages_sent:rate1m{{{GW}}})", "sent"),
            ],
            width=8,
            unit="reqps",
            description="Frames received from and sent to clients, per second (1 m rate).",
            min=0,
        ),
        Panel(
            "P99 latency",
            "gauge",
            [
                Q(
                    f"max(instance:collabgate_message_handling_seconds:p99_1m{{{GW}}})",
                    "worst instance",
                )
            ],
            width=4,
            unit="s",
            description="99th percentile of message handling time over 1 minute, worst instance. Alert above 500 ms.",
            thresholds=latency_thresholds,
            min=0,
            max=1,
        ),
        Panel(
            "Instances serving",
            "stat",
            [
                Q(f'sum(up{{job="collabgate-gateway", {GW}}})', "scraped"),
                Q(f"sum(collabgate_up{{{GW}}})", "serving (not draining)"),
            ],
            width=4,
            description="Instances Prometheus can scrape, and those of them not draining for a deploy.",
            thresholds=RED_AT_ZERO,
        ),
        Panel(
            "Error rate",
            "timeseries",
            [
                Q(
                    f"sum(instance:collabgate_message_errors:rate1m{{{GW}}}) / sum(instance:websocket_messages_received:rate1m{{{GW}}})",
                    "message errors / messages received",
                )
            ],
            width=12,
            unit="percentunit",
            description=(
                "ERROR frames answering a received frame, divided by frames received (1 m). "
                "Handshake rejections are on the Connections panel. Alert above 1 %."
            ),
            thresholds=((None, "green"), (0.01, "red")),
            threshold_line=True,
            min=0,
        ),
        Panel(
            "Top resource types by users",
            "barchart",
            [
                Q(
                    f"topk(10, sum by (resource_type) (collabgate_room_users{{{GW}}}))",
                    "{{resource_type}}",
                    instant=True,
                )
            ],
            width=12,
            description="Connected users per resource type (patient, surgery, ...) right now, busiest ten.",
            options={
                "orientation": "horizontal",
                "xField": "resource_type",
                "showValue": "auto",
                "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"},
                "barWidth": 0.8,
                "groupWidth": 0.7,
                "stacking": "none",
                "tooltip": {"mode": "single", "sort": "none"},
            },
            transformations=(
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value": "users"},
                    },
                },
            ),
        ),
        Row("Errors and connections"),
        Panel(
            "Errors by code",
            "timeseries",
            [Q(rate("collabgate_errors_total", by="code"), "{{code}}")],
            unit="reqps",
            description="ERROR frames per second by protocol error code (docs/protocol.md), handshake rejections included.",
            stack=True,
            min=0,
        ),
        Panel(
            "Connections opened, closed, rejected",
            "timeseries",
            [
                Q(rate("collabgate_connections_opened_total"), "opened"),
                Q(rate("collabgate_connections_closed_total", by="reason"), "closed: {{reason}}"),
                Q(rate("collabgate_connections_rejected_total", by="code"), "rejected: {{code}}"),
            ],
            unit="reqps",
            description="Handshakes accepted, connections closed by reason, handshakes refused by error code, per second.",
            min=0,
        ),
        Row("Latency"),
        Panel(
            "Message handling latency",
            "timeseries",
            [
                Q(
                    f"histogram_quantile({q}, sum by (le) (instance_le:collabgate_message_handling_seconds_bucket:rate1m{{{GW}}}))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            unit="s",
            description="Time from receiving a frame to its reply being queued (1 m).",
            thresholds=((None, "green"), (0.5, "red")),
            threshold_line=True,
            min=0,
        ),
        per_instance(
            "P99 latency by instance",
            "instance:collabgate_message_handling_seconds:p99_1m",
            "The quantity the P99 latency alert watches, one line per instance.",
            alert_at=0.5,
            unit="s",
        ),
        Panel(
            "P99 latency by message type",
            "timeseries",
            [Q(quantile(0.99, "collabgate_message_handling_seconds", by="type"), "{{type}}")],
            unit="s",
            description="Y_UPDATE waits for durable storage; HEARTBEAT should stay near zero.",
            min=0,
        ),
        Panel(
            "Messages received by type",
            "timeseries",
            [Q(rate("websocket_messages_received_total", by="type"), "{{type}}")],
            unit="reqps",
            description="INVALID counts frames that could not be parsed.",
            stack=True,
            min=0,
        ),
        per_instance(
            "Event loop busy",
            "instance:collabgate_event_loop_cpu:rate5m",
            "The share of one CPU each instance's event loop used (5 m). One process relays on that one thread: past about 80 % latency rises steeply, so add an instance before. The line is the CollabgateEventLoopSaturated threshold.",
            alert_at=0.8,
            unit="percentunit",
            max=1,
        ),
        per_instance(
            "Event loop lag",
            "instance:collabgate_event_loop_lag_seconds:p99_5m",
            "P99 of how late the event loop ran a timer (5 m): what a frame waited before the loop could take it, whether the loop was busy, collecting garbage or short of CPU.",
            unit="s",
        ),
        Row("Locks and documents"),
        Panel(
            "Lock requests",
            "timeseries",
            [Q(rate("lock_acquisitions_total", by="result"), "{{result}}")],
            width=8,
            unit="reqps",
            description="LOCK_ACQUIRE outcomes per second. Alert when over half are denied for 5 minutes.",
            stack=True,
            min=0,
        ),
        Panel(
            "Lock decision time",
            "timeseries",
            [Q(quantile(0.99, "lock_acquisition_duration_seconds"), "p99")],
            width=8,
            unit="s",
            description="Time to grant or deny a lock (p99).",
            min=0,
        ),
        Panel(
            "Y.js update size",
            "timeseries",
            [
                Q(quantile(0.5, "collabgate_yjs_update_bytes"), "p50"),
                Q(quantile(0.99, "collabgate_yjs_update_bytes"), "p99"),
            ],
            width=8,
            unit="bytes",
            description="Size of accepted Y.js updates.",
            min=0,
        ),
        Panel(
            "Y.js updates/s",
            "timeseries",
            [Q(rate("collabgate_yjs_update_bytes_count"), "updates")],
            width=8,
            unit="reqps",
            min=0,
        ),
        Panel(
            "Documents and rooms",
            "timeseries",
            [
                Q(f"sum(collabgate_documents_loaded{{{GW}}})", "documents in memory"),
                Q(f"sum(collabgate_resources_active{{{GW}}})", "resources with users"),
            ],
            width=8,
            min=0,
        ),
        Panel(
            "Lock denial ratio",
            "timeseries",
            [
                Q(
                    rate("lock_acquisitions_total", GW + ', result="denied"')
                    + " / "
                    + rate("lock_acquisitions_total"),
                    "denied / requested",
                )
            ],
            width=8,
            unit="percentunit",
            thresholds=((None, "green"), (0.5, "orange")),
            threshold_line=True,
            min=0,
            max=1,
        ),
        Row("Dependencies and audit trail"),
        Panel(
            "Dependency status",
            "state-timeline",
            [Q(f"min by (dependency) (collabgate_dependency_up{{{GW}}})", "{{dependency}}")],
            description="As each gateway sees its backing services (lowest value over the selected instances).",
            mappings=UP_DOWN,
            thresholds=RED_AT_ZERO,
        ),
        Panel(
            "Dependency failures/s",
            "timeseries",
            [Q(rate("collabgate_dependency_failures_total", by="dependency"), "{{dependency}}")],
            unit="reqps",
            description="Failed calls to Redis, RabbitMQ, PostgreSQL, SQLite or the JWKS endpoint. Any Redis failure pages.",
            min=0,
        ),
        per_instance(
            "Audit buffer",
            "collabgate_audit_buffer_events",
            "Audit events waiting to be stored. Should return to zero; growing means the database is not keeping up.",
        ),
        Panel(
            "Audit events stored/s",
            "timeseries",
            [Q(rate("audit_logs_written_total"), "stored")],
            unit="reqps",
            min=0,
        ),
        Panel(
            "Storage commits/s",
            "timeseries",
            [Q(rate("collabgate_storage_commits_total", by="instance"), "{{instance}}")],
            unit="reqps",
            description="Transactions each gateway's database writer committed; each costs a WAL flush and an fsync.",
            min=0,
        ),
        per_instance(
            "P99 storage commit",
            "instance:collabgate_storage_commit_seconds:p99_5m",
            "How long the database writer's commits take to be durable (SQLite: lock wait, writes and fsync). A /ws sender's Y_UPDATE_ACK waits for one; nothing else does. The line is the CollabgateStorageCommitsSlow threshold.",
            alert_at=0.1,
            unit="s",
        ),
        Panel(
            "Writes per commit",
            "timeseries",
            [
                Q(
                    f"{rate('collabgate_storage_writes_total', by='instance')}"
                    f" / {rate('collabgate_storage_commits_total', by='instance')}",
                    "{{instance}}",
                )
            ],
            description="Group-commit batching: how many writes share a transaction. Near 1 under load means every write pays its own fsync and page writes (docs/operations.md, Disk writes to plan for).",
            min=0,
        ),
    ]
    return dashboard(
        "collabgate-websocket",
        "collabgate / WebSocket gateway",
        "Connections, traffic, latency, errors, locks, documents, dependencies and the audit trail of the gateway fleet.",
        [query_variable("instance", "Instance", 'up{job="collabgate-gateway"}', "instance")],
        items,
    )


def redis_dashboard() -> Json:
    sel = 'instance=~"$instance"'
    items: list[Panel | Row] = [
        Row("Redis (prometheus-redis-exporter)"),
        Panel(
            "Redis up",
            "stat",
            [Q(f"redis_up{{{sel}}}", "{{instance}}")],
            width=6,
            height=5,
            mappings=UP_DOWN,
            thresholds=RED_AT_ZERO,
        ),
        Panel(
            "Uptime",
            "stat",
            [Q(f"redis_uptime_in_seconds{{{sel}}}", "{{instance}}")],
            width=6,
            height=5,
            unit="s",
        ),
        Panel(
            "Connected clients",
            "stat",
            [Q(f"redis_connected_clients{{{sel}}}", "{{instance}}")],
            width=6,
            height=5,
        ),
        Panel(
            "Rejected connections/s",
            "stat",
            [Q(rate("redis_rejected_connections_total", sel), "rejected")],
            width=6,
            height=5,
            unit="reqps",
            thresholds=((None, "green"), (0.001, "red")),
        ),
        Panel(
            "Commands/s",
            "timeseries",
            [Q(rate("redis_commands_processed_total", sel, by="instance"), "{{instance}}")],
            unit="ops",
            min=0,
        ),
        Panel(
            "Memory",
            "timeseries",
            [
                Q(f"redis_memory_used_bytes{{{sel}}}", "used {{instance}}"),
                Q(f"redis_memory_max_bytes{{{sel}}}", "maxmemory {{instance}} (0 = unlimited)"),
            ],
            unit="bytes",
            min=0,
        ),
        Panel(
            "Keyspace hit ratio",
            "timeseries",
            [
                Q(
                    f"{rate('redis_keyspace_hits_total', sel)} / ({rate('redis_keyspace_hits_total', sel)} + {rate('redis_keyspace_misses_total', sel)})",
                    "hits / lookups",
                )
            ],
            unit="percentunit",
            min=0,
            max=1,
        ),
        Panel(
            "Keys evicted and expired/s",
            "timeseries",
            [
                Q(rate("redis_evicted_keys_total", sel), "evicted"),
                Q(rate("redis_expired_keys_total", sel), "expired"),
            ],
            unit="ops",
            description="Evictions mean maxmemory is reached: locks or presence entries may be lost.",
            min=0,
        ),
        Panel("Keys", "timeseries", [Q(f"sum by (db) (redis_db_keys{{{sel}}})", "{{db}}")], min=0),
        Row("Redis as the gateway sees it"),
        Panel(
            "Gateway Redis call latency (p99)",
            "timeseries",
            [Q("job_operation:redis_operation_duration_seconds:p99_1m", "{{operation}}")],
            unit="s",
            description="redis_operation_duration_seconds, recorded by the gateways' Redis adapter.",
            min=0,
        ),
        Panel(
            "Gateway Redis failures/s",
            "timeseries",
            [
                Q(
                    'sum by (instance) (rate(collabgate_dependency_failures_total{dependency="redis"}[$__rate_interval]))',
                    "{{instance}}",
                )
            ],
            unit="reqps",
            description="Any failure pages (RedisConnectionFailures).",
            min=0,
        ),
    ]
    return dashboard(
        "collabgate-redis",
        "collabgate / Redis",
        "Redis holding sessions, presence and locks: health from prometheus-redis-exporter, and the gateways' view of it.",
        [query_variable("instance", "Redis", "redis_up", "instance")],
        items,
    )


def rabbitmq_dashboard() -> Json:
    sel = 'instance=~"$instance"'
    items: list[Panel | Row] = [
        Row("RabbitMQ (rabbitmq_prometheus)"),
        Panel(
            "Nodes up",
            "stat",
            [Q(f'up{{job="rabbitmq", {sel}}}', "{{instance}}")],
            width=6,
            height=5,
            mappings=UP_DOWN,
            thresholds=RED_AT_ZERO,
        ),
        Panel(
            "Resource alarms",
            "stat",
            [
                Q(
                    f"sum(rabbitmq_alarms_memory_used_watermark{{{sel}}} + rabbitmq_alarms_free_disk_space_watermark{{{sel}}} + rabbitmq_alarms_file_descriptor_limit{{{sel}}})",
                    "alarms",
                )
            ],
            width=6,
            height=5,
            description="Non-zero: publishers are blocked cluster-wide.",
            thresholds=((None, "green"), (1, "red")),
        ),
        Panel(
            "Connections, channels, queues, consumers",
            "stat",
            [
                Q(f"sum(rabbitmq_connections{{{sel}}})", "connections"),
                Q(f"sum(rabbitmq_channels{{{sel}}})", "channels"),
                Q(f"sum(rabbitmq_queues{{{sel}}})", "queues"),
                Q(f"sum(rabbitmq_consumers{{{sel}}})", "consumers"),
            ],
            width=12,
            height=5,
            options={"colorMode": "none"},
        ),
        Panel(
            "Messages published and delivered/s",
            "timeseries",
            [
                Q(rate("rabbitmq_global_messages_received_total", sel), "published"),
                Q(rate("rabbitmq_global_messages_routed_total", sel), "routed"),
                Q(rate("rabbitmq_global_messages_delivered_total", sel), "delivered"),
                Q(
                    rate("rabbitmq_global_messages_unroutable_dropped_total", sel),
                    "unroutable (dropped)",
                ),
            ],
            unit="ops",
            min=0,
        ),
        Panel(
            "Messages queued",
            "timeseries",
            [
                Q(f"sum(rabbitmq_queue_messages_ready{{{sel}}})", "ready"),
                Q(f"sum(rabbitmq_queue_messages_unacked{{{sel}}})", "unacknowledged"),
            ],
            description="A backlog that grows means consumers (gateway instances) are not keeping up.",
            min=0,
        ),
        Panel(
            "Memory",
            "timeseries",
            [
                Q(f"rabbitmq_process_resident_memory_bytes{{{sel}}}", "used {{instance}}"),
                Q(f"rabbitmq_resident_memory_limit_bytes{{{sel}}}", "alarm at {{instance}}"),
            ],
            width=8,
            unit="bytes",
            min=0,
        ),
        Panel(
            "Free disk",
            "timeseries",
            [
                Q(f"rabbitmq_disk_space_available_bytes{{{sel}}}", "free {{instance}}"),
                Q(f"rabbitmq_disk_space_available_limit_bytes{{{sel}}}", "alarm at {{instance}}"),
            ],
            width=8,
            unit="bytes",
            min=0,
        ),
        Panel(
            "File descriptors",
            "timeseries",
            [
                Q(f"rabbitmq_process_open_fds{{{sel}}}", "open {{instance}}"),
                Q(f"rabbitmq_process_max_fds{{{sel}}}", "limit {{instance}}"),
            ],
            width=8,
            min=0,
        ),
        Row("RabbitMQ as the gateway sees it"),
        Panel(
            "Gateway publishes/s",
            "timeseries",
            [Q("job_result:rabbitmq_publish:rate1m", "{{result}}")],
            unit="ops",
            description="rabbitmq_publish_total: room events the gateways published, by result.",
            min=0,
        ),
        Panel(
            "Gateway RabbitMQ failures/s",
            "timeseries",
            [
                Q(
                    'sum by (instance) (rate(collabgate_dependency_failures_total{dependency="rabbitmq"}[$__rate_interval]))',
                    "{{instance}}",
                )
            ],
            unit="reqps",
            min=0,
        ),
    ]
    return dashboard(
        "collabgate-rabbitmq",
        "collabgate / RabbitMQ",
        "RabbitMQ carrying room events between gateway instances: broker health and the gateways' publishes.",
        [query_variable("instance", "Node", 'up{job="rabbitmq"}', "instance")],
        items,
    )


def postgresql_dashboard() -> Json:
    sel = 'instance=~"$instance"'
    db = 'instance=~"$instance", datname=~"$database"'
    items: list[Panel | Row] = [
        Row("PostgreSQL (prometheus-postgres-exporter)"),
        Panel(
            "PostgreSQL up",
            "stat",
            [Q(f"pg_up{{{sel}}}", "{{instance}}")],
            width=6,
            height=5,
            mappings=UP_DOWN,
            thresholds=RED_AT_ZERO,
        ),
        Panel(
            "Connections used",
            "gauge",
            [
                Q(
                    f"sum(pg_stat_activity_count{{{sel}}}) / max(pg_settings_max_connections{{{sel}}})",
                    "of max_connections",
                )
            ],
            width=6,
            height=5,
            unit="percentunit",
            thresholds=((None, "green"), (0.7, "yellow"), (0.9, "red")),
            min=0,
            max=1,
        ),
        Panel(
            "Longest transaction",
            "stat",
            [Q(f"max(pg_stat_activity_max_tx_duration{{{db}}})", "seconds")],
            width=6,
            height=5,
            unit="s",
            description="Long transactions hold locks and stop vacuum.",
            thresholds=((None, "green"), (60, "yellow"), (300, "red")),
        ),
        Panel(
            "Deadlocks/s",
            "stat",
            [Q(rate("pg_stat_database_deadlocks", db), "deadlocks")],
            width=6,
            height=5,
            unit="ops",
            thresholds=((None, "green"), (0.001, "red")),
        ),
        Panel(
            "Connections by state",
            "timeseries",
            [
                Q(f"sum by (state) (pg_stat_activity_count{{{db}}})", "{{state}}"),
                Q(f"max(pg_settings_max_connections{{{sel}}})", "max_connections"),
            ],
            min=0,
        ),
        Panel(
            "Transactions/s",
            "timeseries",
            [
                Q(rate("pg_stat_database_xact_commit", db), "commits"),
                Q(rate("pg_stat_database_xact_rollback", db), "rollbacks"),
            ],
            unit="ops",
            min=0,
        ),
        Panel(
            "Cache hit ratio",
            "timeseries",
            [
                Q(
                    f"{rate('pg_stat_database_blks_hit', db)} / ({rate('pg_stat_database_blks_hit', db)} + {rate('pg_stat_database_blks_read', db)})",
                    "buffer cache hits",
                )
            ],
            unit="percentunit",
            description="Below about 99 % the working set no longer fits in shared_buffers.",
            min=0,
            max=1,
        ),
        Panel(
            "Rows written/s",
            "timeseries",
            [
                Q(rate("pg_stat_database_tup_inserted", db), "inserted"),
                Q(rate("pg_stat_database_tup_updated", db), "updated"),
                Q(rate("pg_stat_database_tup_deleted", db), "deleted"),
            ],
            unit="ops",
            min=0,
        ),
        Panel(
            "Database size",
            "timeseries",
            [Q(f"pg_database_size_bytes{{{db}}}", "{{datname}}")],
            unit="bytes",
            min=0,
        ),
        Row("PostgreSQL as the gateway sees it"),
        Panel(
            "Audit events stored/s and waiting",
            "timeseries",
            [
                Q("sum(rate(audit_logs_written_total[$__rate_interval]))", "stored/s"),
                Q("sum(collabgate_audit_buffer_events)", "waiting"),
            ],
            description="The audit trail lives in PostgreSQL: a growing backlog means writes are failing or slow.",
            min=0,
        ),
        Panel(
            "Gateway PostgreSQL failures/s",
            "timeseries",
            [
                Q(
                    'sum by (instance) (rate(collabgate_dependency_failures_total{dependency="postgres"}[$__rate_interval]))',
                    "{{instance}}",
                )
            ],
            unit="reqps",
            min=0,
        ),
    ]
    return dashboard(
        "collabgate-postgresql",
        "collabgate / PostgreSQL",
        "PostgreSQL holding documents and the audit trail: health from prometheus-postgres-exporter, and the gateways' view of it.",
        [
            query_variable("instance", "Server", "pg_up", "instance"),
            query_variable(
                "database",
                "Database",
                'pg_stat_database_numbackends{instance=~"$instance"}',
                "datname",
            ),
        ],
        items,
    )


DASHBOARDS = {
    "collabgate-websocket.json": websocket_dashboard,
    "collabgate-redis.json": redis_dashboard,
    "collabgate-rabbitmq.json": rabbitmq_dashboard,
    "collabgate-postgresql.json": postgresql_dashboard,
}


def render(build: Any) -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


def expressions(board: Json) -> Iterator[tuple[str, str]]:
    """(where, expr) for every PromQL expression of a dashboard, variable queries included."""
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable ${variable['name']}", variable["definition"]
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail when the checked-in JSON differs")
    mode.add_argument("--exprs", action="store_true", help="print every PromQL expression")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)

    stale = []
    for name, build in DASHBOARDS.items():
        text = render(build)
        path = args.out / name
        if args.exprs:
            for where, expr in expressions(json.loads(text)):
                print(f"{name}\t{where}\t{expr}")
        elif args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(
            "out of date (run: python tools/dashboards.py):\n  " + "\n  ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
