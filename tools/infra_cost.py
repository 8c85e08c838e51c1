#!/usr/bin/env python3
"""Estimated monthly AWS cost of each collabgate environment, resource by resource.

Reads the environments' Terraform (terraform/environments/<env>/*.tf and terraform.tfvars),
resolves every module input the way Terraform would for literals, variables, tfvars values and
module defaults, and prices what the modules create from the dated price table in
terraform/pricing/prices-<region>-<date>.json plus the usage assumptions in
terraform/pricing/usage-assumptions.json (traffic, log volume and the like, which Terraform
cannot know).

Standard library and python-hcl2 only. The HCL helpers here are also what tests/infra uses.

    python tools/infra_cost.py [--env prod] [--prices PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

REPO = Path(__file__).resolve().parent.parent
TERRAFORM = REPO / "terraform"
ENVIRONMENTS = ("dev", "staging", "prod")
HOURS_PER_MONTH = 730

_OPTIONS = SerializationOptions(
    explicit_blocks=False, strip_string_quotes=True, with_comments=False
)
_REF = re.compile(r"^\$\{(var|local)\.([A-Za-z0-9_]+)\}$")
_INTERP = re.compile(r"\$\{(var|local)\.([A-Za-z0-9_]+)\}")
_LENGTH = re.compile(r"^\$\{length\((var|local)\.([A-Za-z0-9_]+)\)\}$")


class Unresolved(Exception):
    """An expression that depends on something known only at apply time."""


# ---------------------------------------------------------------------------------------------
# HCL loading (python-hcl2 8.x; older 4.x releases return a different shape)
# ---------------------------------------------------------------------------------------------


def parse_hcl(text: str) -> dict[str, Any]:
    """Parse HCL text into plain dicts: unquoted strings and labels, no comments."""
    return hcl2.loads(text, serialization_options=_OPTIONS)


def parse_file(path: Path) -> dict[str, Any]:
    return parse_hcl(path.read_text(encoding="utf-8"))


@dataclass
class Config:
    """All blocks of one Terraform directory (a root or a module), merged across its files."""

    path: Path
    variables: dict[str, dict[str, Any]]
    locals: dict[str, Any]
    modules: dict[str, dict[str, Any]]
    resources: dict[str, dict[str, dict[str, Any]]]
    data: dict[str, dict[str, dict[str, Any]]]
    outputs: dict[str, dict[str, Any]]
    providers: list[dict[str, Any]]
    terraform: list[dict[str, Any]]


def load_config(directory: Path) -> Config:
    cfg = Config(directory, {}, {}, {}, {}, {}, {}, [], [])
    for tf in sorted(directory.glob("*.tf")):
        doc = parse_file(tf)
        for block in doc.get("variable", []):
            cfg.variables.update(block)
        for block in doc.get("locals", []):
            cfg.locals.update(block)
        for block in doc.get("module", []):
            cfg.modules.update(block)
        for block in doc.get("output", []):
            cfg.outputs.update(block)
        for kind, target in (("resource", cfg.resources), ("data", cfg.data)):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    target.setdefault(rtype, {}).update(named)
        for block in doc.get("provider", []):
            cfg.providers.append(block)
        cfg.terraform.extend(doc.get("terraform", []))
    return cfg


def load_tfvars(path: Path) -> dict[str, Any]:
    return parse_file(path) if path.exists() else {}


# ---------------------------------------------------------------------------------------------
# Resolution of literals, var.* and local.* references
# ---------------------------------------------------------------------------------------------


@dataclass
class Scope:
    variables: dict[str, Any]
    locals: dict[str, Any]

    def lookup(self, kind: str, name: str) -> Any:
        table = self.variables if kind == "var" else self.locals
        if name not in table:
            raise Unresolved(f"{kind}.{name}")
        value = table[name]
        return resolve(value, self) if kind == "local" else value


def resolve(value: Any, scope: Scope) -> Any:
    """Resolve literals and plain var./local. references; raise Unresolved for the rest."""
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, scope) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    whole = _REF.match(value)
    if whole:
        return scope.lookup(whole.group(1), whole.group(2))
    length = _LENGTH.match(value)
    if length:
        return len(scope.lookup(length.group(1), length.group(2)))

    def substitute(m: re.Match[str]) -> str:
        v = scope.lookup(m.group(1), m.group(2))
        if isinstance(v, (dict, list)) or v is None:
            raise Unresolved(m.group(0))
        return str(v).lower() if isinstance(v, bool) else str(v)

    out = _INTERP.sub(substitute, value)
    if "${" in out:
        raise Unresolved(out)
    return out


def try_resolve(value: Any, scope: Scope, default: Any = None) -> Any:
    try:
        return resolve(value, scope)
    except Unresolved:
        return default


def environment_scope(env: str) -> tuple[Config, Scope]:
    directory = TERRAFORM / "environments" / env
    cfg = load_config(directory)
    tfvars = load_tfvars(directory / "terraform.tfvars")
    variables = {name: body.get("default") for name, body in cfg.variables.items()}
    variables.update(tfvars)
    return cfg, Scope(variables, cfg.locals)


def module_inputs(env: str, module: str) -> dict[str, Any]:
    """Inputs of one module call as Terraform would see them: the call's arguments resolved in
    the environment (module outputs, known only at apply time, stay unresolved and are left
    out), then the module's own defaults for every input not given."""
    cfg, scope = environment_scope(env)
    call = cfg.modules[module]
    mod_cfg = load_config((cfg.path / call["source"]).resolve())
    values: dict[str, Any] = {name: body.get("default") for name, body in mod_cfg.variables.items()}
    for key, expr in call.items():
        if key in {"source", "version", "providers", "depends_on", "count", "for_each"}:
            continue
        try:
            values[key] = resolve(expr, scope)
        except Unresolved:
            values[key] = Unresolved(str(expr))
    return values


def module_scope(env: str, module: str) -> tuple[Config, Scope]:
    cfg, _ = environment_scope(env)
    mod_cfg = load_config((cfg.path / cfg.modules[module]["source"]).resolve())
    inputs = {k: v for k, v in module_inputs(env, module).items() if not isinstance(v, Unresolved)}
    return mod_cfg, Scope(inputs, mod_cfg.locals)


# ---------------------------------------------------------------------------------------------
# Cost model
# ---------------------------------------------------------------------------------------------


@dataclass
class Line:
    component: str
    resource: str
    detail: str
    monthly: float


def latest_price_file() -> Path:
    files = sorted((TERRAFORM / "pricing").glob("prices-*.json"))
    if not files:
        raise SystemExit("no terraform/pricing/prices-*.json price table")
    return files[-1]


def _price(table: dict[str, Any], key: str, what: str) -> Any:
    if key not in table:
        raise SystemExit(f"price table has no {what} {key!r}: add it to the price table")
    return table[key]


def estimate(env: str, prices: dict[str, Any], usage: dict[str, Any]) -> list[Line]:
    u = usage[env]
    h = prices["_about"].get("hours_per_month", HOURS_PER_MONTH)
    lines: list[Line] = []

    def add(component: str, resource: str, detail: str, monthly: float) -> None:
        lines.append(Line(component, resource, detail, round(monthly, 2)))

    # --- networking ---------------------------------------------------------------------------
    net = module_inputs(env, "networking")
    nat = int(net["nat_gateway_count"])
    vpc = prices["vpc"]
    add("networking", "aws_nat_gateway", f"{nat} x {h} h", nat * h * vpc["nat_gateway_hour"])
    add(
        "networking",
        "aws_nat_gateway (data)",
        f"{u['nat_gb_processed']} GB processed",
        u["nat_gb_processed"] * vpc["nat_gateway_gb_processed"],
    )
    add(
        "networking",
        "aws_eip (NAT)",
        f"{nat} public IPv4 x {h} h",
        nat * h * vpc["public_ipv4_address_hour"],
    )
    add(
        "networking",
        "aws_flow_log",
        f"{u['flow_logs_gb']} GB to CloudWatch Logs",
        u["flow_logs_gb"] * prices["cloudwatch"]["vended_logs_ingested_gb"],
    )
    add("networking", "aws_kms_key (flow logs)", "1 key", prices["kms"]["key_month"])
    add(
        "networking",
        "internet egress",
        f"{u['internet_egress_gb']} GB",
        u["internet_egress_gb"] * vpc["internet_egress_gb"],
    )

    # --- security -----------------------------------------------------------------------------
    sec_cfg = load_config(TERRAFORM / "modules" / "security")
    keys = len(sec_cfg.resources.get("aws_kms_key", {}))
    add(
        "security",
        "aws_kms_key",
        f"{keys} keys + {u['kms_requests_10k']}x10k requests",
        keys * prices["kms"]["key_month"]
        + u["kms_requests_10k"] * prices["kms"]["requests_per_10k"],
    )
    secrets = len(sec_cfg.locals["secret_descriptions"])  # database, redis, amqp
    add(
        "security",
        "aws_secretsmanager_secret",
        f"{secrets} secrets",
        secrets * prices["secrets_manager"]["secret_month"]
        + u["secrets_api_calls_10k"] * prices["secrets_manager"]["api_calls_per_10k"],
    )
    add(
        "security",
        "aws_cloudtrail",
        "management events (first copy) + state bucket data events",
        u["cloudtrail_data_events_100k"] * prices["cloudtrail"]["data_events_per_100k"],
    )
    add(
        "security",
        "aws_cloudwatch_log_group (CloudTrail)",
        f"{u['cloudtrail_logs_gb']} GB",
        u["cloudtrail_logs_gb"] * prices["cloudwatch"]["logs_ingested_gb"],
    )
    add(
        "security",
        "aws_s3_bucket (logs, cloudtrail)",
        f"{u['log_bucket_gb']} GB",
        u["log_bucket_gb"] * prices["s3"]["standard_gb_month"],
    )

    # --- compute ------------------------------------------------------------------------------
    comp = module_inputs(env, "compute")
    arch = comp["cpu_architecture"]
    fargate = _price(prices["fargate"], arch, "Fargate architecture")
    vcpu = comp["task_cpu"] / 1024
    gb = comp["task_memory"] / 1024
    tasks = 2 * int(comp["autoscaling_min_capacity"])  # blue and green, both at their minimum
    per_task = h * (vcpu * fargate["vcpu_hour"] + gb * fargate["gb_hour"])
    add(
        "compute",
        "aws_ecs_service (blue+green)",
        f"{tasks} tasks x {vcpu:g} vCPU/{gb:g} GB {arch} x {h} h (at min capacity)",
        tasks * per_task,
    )
    elb = prices["elb"]
    add(
        "compute",
        "aws_lb",
        f"{h} h + {u['alb_average_lcu']} LCU average",
        h * (elb["alb_hour"] + u["alb_average_lcu"] * elb["alb_lcu_hour"]),
    )
    azs = len(net["public_subnet_cidrs"])
    add(
        "compute",
        "aws_lb (public IPv4)",
        f"{azs} addresses x {h} h",
        azs * h * vpc["public_ipv4_address_hour"],
    )
    comp_cfg = load_config(TERRAFORM / "modules" / "compute")
    rules = len(comp_cfg.resources["aws_wafv2_web_acl"]["this"]["rule"])
    waf = prices["waf"]
    add(
        "compute",
        "aws_wafv2_web_acl",
        f"1 ACL, {rules} rules, {u['waf_million_requests']} M requests",
        waf["web_acl_month"]
        + rules * waf["rule_month"]
        + u["waf_million_requests"] * waf["requests_per_million"],
    )
    add(
        "compute",
        "aws_cloudwatch_log_group (gateway, ADOT, metrics, WAF)",
        f"{u['gateway_logs_gb']} GB",
        u["gateway_logs_gb"] * prices["cloudwatch"]["logs_ingested_gb"],
    )
    # ALB 5xx, unhealthy targets per colour, and 2 alarms per target-tracking policy (2 per colour)
    alarms = 1 + 2 + 2 * 2 * 2
    add(
        "compute",
        "aws_cloudwatch_metric_alarm",
        f"{alarms} alarms (incl. target tracking)",
        alarms * prices["cloudwatch"]["standard_alarm_month"],
    )
    add(
        "compute",
        "custom metric websocket_connections_total",
        "2 metrics (one per colour)",
        2 * prices["cloudwatch"]["custom_metric_month"],
    )
    add(
        "compute",
        "aws_ecr_repository",
        f"{u['ecr_storage_gb']} GB",
        u["ecr_storage_gb"] * prices["ecr"]["storage_gb_month"],
    )

    # --- database -----------------------------------------------------------------------------
    db = module_inputs(env, "database")
    rds = prices["rds_postgresql"]
    cls = db["instance_class"]
    az = "multi_az" if db["multi_az"] else "single_az"
    inst = _price(rds["instance_hour"], cls, "RDS instance class")
    storage = int(db["allocated_storage_gb"])
    add(
        "database",
        "aws_db_instance (primary)",
        f"{cls} {az.replace('_', '-')} x {h} h",
        h * inst[az],
    )
    add(
        "database",
        "aws_db_instance (primary storage)",
        f"{storage} GB gp3 {az.replace('_', '-')}",
        storage * rds["gp3_gb_month"][az],
    )
    if db["create_read_replica"]:
        rcls = db.get("replica_instance_class") or cls
        rinst = _price(rds["instance_hour"], rcls, "RDS instance class")
        add(
            "database",
            "aws_db_instance (read replica)",
            f"{rcls} single-AZ x {h} h",
            h * rinst["single_az"],
        )
        add(
            "database",
            "aws_db_instance (replica storage)",
            f"{storage} GB gp3",
            storage * rds["gp3_gb_month"]["single_az"],
        )
    add(
        "database",
        "automated backups beyond free",
        f"{u['db_backup_gb_beyond_free']} GB",
        u["db_backup_gb_beyond_free"] * rds["backup_storage_gb_month"],
    )
    copies = 2 if db.get("backup_copy_destination_vault_arn") else 1
    add(
        "database",
        "aws_backup_plan (daily, 30 days)",
        f"{u['db_snapshot_gb']} GB x {copies} vault(s)",
        copies * u["db_snapshot_gb"] * prices["aws_backup"]["rds_snapshot_gb_month"],
    )
    add(
        "database",
        "RDS-managed master secret",
        "1 secret",
        prices["secrets_manager"]["secret_month"],
    )
    add("database", "Performance Insights (7 days)", "free tier", 0.0)

    # --- cache --------------------------------------------------------------------------------
    cache = module_inputs(env, "cache")
    nodes = 1 + int(cache["replica_count"])
    node_price = _price(
        prices["elasticache_redis"]["node_hour"], cache["node_type"], "ElastiCache node type"
    )
    add(
        "cache",
        "aws_elasticache_replication_group",
        f"{nodes} x {cache['node_type']} x {h} h",
        nodes * h * node_price,
    )

    # --- messaging ----------------------------------------------------------------------------
    mq = module_inputs(env, "messaging")
    brokers = 3 if mq["deployment_mode"] == "CLUSTER_MULTI_AZ" else 1
    broker_price = _price(
        prices["amazon_mq_rabbitmq"]["broker_hour"], mq["instance_type"], "Amazon MQ instance type"
    )
    add(
        "messaging",
        "aws_mq_broker",
        f"{brokers} x {mq['instance_type']} x {h} h ({mq['deployment_mode']})",
        brokers * h * broker_price,
    )
    add(
        "messaging",
        "aws_mq_broker (storage)",
        f"{brokers} x {u['mq_storage_gb_per_node']} GB",
        brokers * u["mq_storage_gb_per_node"] * prices["amazon_mq_rabbitmq"]["storage_gb_month"],
    )

    # --- monitoring ---------------------------------------------------------------------------
    amp = prices["managed_prometheus"]
    samples = (
        tasks * u["prometheus_series_per_task"] * (30 * 86400 / u["prometheus_scrape_interval_s"])
    )
    add(
        "monitoring",
        "aws_prometheus_workspace (ingestion)",
        f"{samples / 1e6:.0f} M samples",
        samples / 1e7 * amp["samples_ingested_per_10_million"],
    )
    add(
        "monitoring",
        "aws_prometheus_workspace (storage)",
        f"{u['prometheus_storage_gb']} GB",
        u["prometheus_storage_gb"] * amp["storage_gb_month"],
    )
    graf = prices["managed_grafana"]
    add(
        "monitoring",
        "aws_grafana_workspace",
        f"{u['grafana_editors']} editors, {u['grafana_viewers']} viewers",
        u["grafana_editors"] * graf["editor_user_month"]
        + u["grafana_viewers"] * graf["viewer_user_month"],
    )
    add(
        "monitoring",
        "aws_cloudwatch_metric_alarm (data tier)",
        "3 alarms",
        3 * prices["cloudwatch"]["standard_alarm_month"],
    )
    add(
        "monitoring",
        "aws_cloudwatch_log_group (RDS, Redis, AMP)",
        f"{u['other_logs_gb']} GB",
        u["other_logs_gb"] * prices["cloudwatch"]["logs_ingested_gb"],
    )
    add("monitoring", "aws_sns_topic (alerts)", "e-mail notifications within free tier", 0.0)
    return lines


def report(env: str, lines: list[Line]) -> str:
    width = max(len(x.resource) for x in lines)
    out = [f"== {env} ==", f"{'component':<11} {'resource':<{width}}  {'USD/month':>10}  detail"]
    for x in lines:
        out.append(f"{x.component:<11} {x.resource:<{width}}  {x.monthly:>10.2f}  {x.detail}")
    total = sum(x.monthly for x in lines)
    out.append(f"{'TOTAL':<11} {'':<{width}}  {total:>10.2f}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env", choices=ENVIRONMENTS, action="append", help="environment(s); default all"
    )
    parser.add_argument(
        "--prices", type=Path, help="price table (default: newest terraform/pricing/prices-*.json)"
    )
    parser.add_argument(
        "--usage", type=Path, default=TERRAFORM / "pricing" / "usage-assumptions.json"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)

    price_file = args.prices or latest_price_file()
    prices = json.loads(price_file.read_text(encoding="utf-8"))
    usage = json.loads(args.usage.read_text(encoding="utf-8"))
    envs = args.env or list(ENVIRONMENTS)
    about = prices["_about"]

    results = {env: estimate(env, prices, usage) for env in envs}
    if args.json:
        print(
            json.dumps(
                {
                    "price_table": str(price_file.relative_to(REPO)),
                    "as_of": about["as_of"],
                    "environments": {
                        env: {
                            "lines": [x.__dict__ for x in lines],
                            "total": round(sum(x.monthly for x in lines), 2),
                        }
                        for env, lines in results.items()
                    },
                },
                indent=2,
            )
        )
        return 0

    print(
        f"Estimated monthly cost, {about['currency']}, {about['region']} on-demand prices as of {about['as_of']}"
    )
    print(f"Price table: {price_file.relative_to(REPO)} - {about['source']}")
    print(
        f"Usage assumptions: {args.usage.relative_to(REPO) if args.usage.is_absolute() else args.usage}"
    )
    print(
        "Blue and green are both counted at their minimum task count; autoscaling adds up to "
        "(max - min) tasks per colour at the Fargate rates above.\n"
    )
    for env, lines in results.items():
        print(report(env, lines))
        print()
    print(
        "Summary: "
        + ", ".join(f"{env} {sum(x.monthly for x in lines):.2f}" for env, lines in results.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
