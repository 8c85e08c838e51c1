"""Just enough PromQL reading for the tests: which metric names an expression uses.

Not a parser: string literals, label matchers, range durations and grouping clauses are
removed, then every identifier not followed by "(" and not a keyword is a metric name.
"""

from __future__ import annotations

import re

from collabgate.ops.metrics import Metrics

KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "inf",
    "nan",
}
#: Metrics from exporters, matched by prefix (their exact names are proven by the live test).
EXPORTER_PREFIXES = ("redis_", "pg_", "rabbitmq_", "alertmanager_")
#: Series Prometheus makes itself.
BUILTIN = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*$")
_IDENT = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")


def selector_of_variable(definition: str) -> str:
    """The PromQL selector inside ``label_values(<selector>, <label>)``."""
    match = _LABEL_VALUES.match(definition)
    if match is None:
        raise ValueError(f"not a label_values() query: {definition}")
    return match["selector"]


def metric_names(expr: str) -> set[str]:
    if expr.lstrip().startswith("label_values("):
        expr = selector_of_variable(expr)
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        token = match.group(1)
        if token.lower() in KEYWORDS or re.fullmatch(r"\d+(?:e\d+)?", token):
            continue
        names.add(token)
    return names


def gateway_metric_names() -> set[str]:
    """Every series name the gateway can export, from its own registry (labelled or not)."""
    names = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
        else:
            names.add(family.name)
    return names


def is_known(name: str, recorded: set[str]) -> bool:
    return (
        name in recorded
        or name in BUILTIN
        or name in gateway_metric_names()
        or name.startswith(EXPORTER_PREFIXES)
    )
