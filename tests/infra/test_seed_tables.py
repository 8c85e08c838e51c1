"""EPIC-003 DEVOPS-001.1/.5/.6, as resolved for the prod environment: the environment's module
inputs (main.tf, terraform.tfvars) over the modules' defaults, and the module resources that
use them."""

from __future__ import annotations

import json
import re
from typing import Any


def _count_of(resource: dict[str, Any]) -> Any:
    return resource.get("count")


# --- networking -------------------------------------------------------------------------------


def test_vpc_cidr_subnets_nat_igw(prod: Any, modules: dict[str, Any], ic: Any) -> None:
    net = prod.inputs("networking")
    assert net["vpc_cidr"] == "10.0.0.0/16"
    assert len(net["public_subnet_cidrs"]) == 3
    assert len(net["private_subnet_cidrs"]) == 3
    assert len(set(net["availability_zones"])) == 3, "three distinct availability zones"
    assert net["nat_gateway_count"] == 3, "one NAT gateway per AZ"

    res = modules["networking"].resources
    _, scope = prod.scope("networking")
    assert ic.resolve(res["aws_vpc"]["this"]["cidr_block"], scope) == "10.0.0.0/16"
    assert ic.resolve(modules["networking"].locals["az_count"], scope) == 3
    assert res["aws_subnet"]["public"]["count"] == "${local.az_count}"
    assert res["aws_subnet"]["private"]["count"] == "${length(var.private_subnet_cidrs)}"
    assert ic.resolve(res["aws_subnet"]["private"]["count"], scope) == 3
    assert res["aws_nat_gateway"]["this"]["count"] == "${var.nat_gateway_count}"
    assert ic.resolve(res["aws_nat_gateway"]["this"]["count"], scope) == 3
    # NAT i sits in public subnet i, and each private route table uses its own AZ's NAT.
    assert res["aws_nat_gateway"]["this"]["subnet_id"] == "${aws_subnet.public[count.index].id}"
    assert (
        "count.index % var.nat_gateway_count" in res["aws_route"]["private_nat"]["nat_gateway_id"]
    )
    # Exactly one internet gateway.
    assert list(res["aws_internet_gateway"]) == ["this"]
    assert _count_of(res["aws_internet_gateway"]["this"]) is None
    for subnet in res["aws_subnet"].values():
        assert subnet["map_public_ip_on_launch"] is False


def test_vpc_flow_logs(modules: dict[str, Any]) -> None:
    res = modules["networking"].resources
    flow = res["aws_flow_log"]["this"]
    assert flow["vpc_id"] == "${aws_vpc.this.id}"
    assert flow["traffic_type"] == "ALL"
    group = res["aws_cloudwatch_log_group"]["flow_logs"]
    assert group["kms_key_id"] == "${aws_kms_key.flow_logs.arn}"


# --- compute ----------------------------------------------------------------------------------


def test_task_size_and_counts(prod: Any, modules: dict[str, Any], ic: Any) -> None:
    comp = prod.inputs("compute")
    assert comp["task_cpu"] == 1024, "1 vCPU"
    assert comp["task_memory"] == 2048, "2048 MB"
    assert comp["desired_count"] == 3
    assert comp["autoscaling_min_capacity"] == 3
    assert comp["autoscaling_max_capacity"] == 10

    res = modules["compute"].resources
    _, scope = prod.scope("compute")
    task = res["aws_ecs_task_definition"]["gateway"]
    assert task["requires_compatibilities"] == ["FARGATE"]
    assert task["network_mode"] == "awsvpc"
    assert ic.resolve(task["cpu"], scope) == 1024
    assert ic.resolve(task["memory"], scope) == 2048
    service = res["aws_ecs_service"]["gateway"]
    assert ic.resolve(service["desired_count"], scope) == 3
    assert service["launch_type"] == "FARGATE"
    target = res["aws_appautoscaling_target"]["gateway"]
    assert ic.resolve(target["min_capacity"], scope) == 3
    assert ic.resolve(target["max_capacity"], scope) == 10
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    # Terraform sets initial values only; the controller and the autoscaler own them after.
    assert service["lifecycle"][0]["ignore_changes"] == ["task_definition", "desired_count"]


def test_container_health_check_on_health(prod: Any, modules: dict[str, Any]) -> None:
    comp = prod.inputs("compute")
    assert comp["container_health_check_path"] == "/health"
    assert comp["container_port"] == 8080
    cfg = modules["compute"]
    command = cfg.locals["health_check_command"]
    assert "http://127.0.0.1:${var.container_port}${var.container_health_check_path}" in command
    definitions = cfg.resources["aws_ecs_task_definition"]["gateway"]["container_definitions"]
    assert re.search(
        r"healthCheck = \{command = \[\"CMD\", \"python\", \"-c\", local\.health_check_command\]",
        definitions,
    )
    assert "readonlyRootFilesystem = true" in definitions
    for env_var in ("COLLABGATE_JWT_JWKS_URL", "COLLABGATE_JWT_ISSUER", "COLLABGATE_JWT_AUDIENCE"):
        assert f'name = "{env_var}"' in definitions
    for secret, key in (
        ("COLLABGATE_DATABASE_URL", "database"),
        ("COLLABGATE_REDIS_URL", "redis"),
        ("COLLABGATE_AMQP_URL", "amqp"),
    ):
        assert (
            f'name = "{secret}", valueFrom = "${{var.gateway_secret_arns["{key}"]}}:url::"'
            in definitions
        )


def test_graceful_drain_times(prod: Any, modules: dict[str, Any]) -> None:
    comp = prod.inputs("compute")
    assert 60 <= comp["stop_timeout_seconds"] <= 120
    assert 60 <= comp["deregistration_delay_seconds"] <= 120
    definitions = modules["compute"].resources["aws_ecs_task_definition"]["gateway"][
        "container_definitions"
    ]
    assert "stopTimeout = var.stop_timeout_seconds" in definitions
    tg = modules["compute"].resources["aws_lb_target_group"]["gateway"]
    assert tg["deregistration_delay"] == "${var.deregistration_delay_seconds}"


def test_alb_https_weighted_blue_green(prod: Any, modules: dict[str, Any]) -> None:
    res = modules["compute"].resources
    https = res["aws_lb_listener"]["https"]
    assert https["port"] == 443
    assert https["protocol"] == "HTTPS"
    assert https["certificate_arn"] == "${var.acm_certificate_arn}"
    assert prod.inputs("compute")["ssl_policy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    action = https["default_action"][0]
    assert action["type"] == "forward"
    groups = action["forward"][0]["target_group"]
    assert [g["arn"] for g in groups] == [
        '${aws_lb_target_group.gateway["blue"].arn}',
        '${aws_lb_target_group.gateway["green"].arn}',
    ]
    weights = modules["compute"].locals["initial_weights"]
    assert weights == {"blue": 100, "green": 0}
    assert [g["weight"] for g in groups] == [
        '${local.initial_weights["blue"]}',
        '${local.initial_weights["green"]}',
    ]
    # Terraform must not fight the deploy controller over the weights.
    assert https["lifecycle"][0]["ignore_changes"] == [
        "${default_action[0].forward[0].target_group}"
    ]

    redirect = res["aws_lb_listener"]["http_redirect"]
    assert redirect["port"] == 80
    assert redirect["protocol"] == "HTTP"
    r = redirect["default_action"][0]
    assert r["type"] == "redirect"
    assert r["redirect"][0] == {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}


def test_alb_websocket_settings(prod: Any, modules: dict[str, Any]) -> None:
    comp = prod.inputs("compute")
    assert comp["alb_idle_timeout_seconds"] >= 300, "WebSockets outlive the 60 s default"
    res = modules["compute"].resources
    assert res["aws_lb"]["this"]["idle_timeout"] == "${var.alb_idle_timeout_seconds}"
    tg = res["aws_lb_target_group"]["gateway"]
    assert tg["for_each"] == "${local.colors}"
    assert modules["compute"].locals["colors"] == '${toset(["blue", "green"])}'
    assert tg["stickiness"][0]["type"] == "lb_cookie"
    assert tg["stickiness"][0]["enabled"] is True
    assert tg["target_type"] == "ip"
    assert tg["health_check"][0]["path"] == "${var.target_health_check_path}"
    assert res["aws_lb"]["this"]["drop_invalid_header_fields"] is True


def test_autoscaling_on_cpu_and_connections_per_task(prod: Any, modules: dict[str, Any]) -> None:
    res = modules["compute"].resources
    cpu = res["aws_appautoscaling_policy"]["cpu"]["target_tracking_scaling_policy_configuration"][0]
    assert (
        cpu["predefined_metric_specification"][0]["predefined_metric_type"]
        == "ECSServiceAverageCPUUtilization"
    )
    conn = res["aws_appautoscaling_policy"]["connections"][
        "target_tracking_scaling_policy_configuration"
    ][0]
    metric = conn["customized_metric_specification"][0]
    assert metric["metric_name"] == "websocket_connections_total"
    assert metric["statistic"] == "Average"
    assert {d["name"] for d in metric["dimensions"]} == {"ClusterName", "ServiceName"}
    assert prod.inputs("compute")["connections_per_task_target"] > 0
    # The ADOT sidecar publishes exactly that metric with those dimensions.
    adot = modules["compute"].locals["adot_config"]
    assert "^websocket_connections_total" in adot
    assert '[["ClusterName", "ServiceName"]]' in adot


# --- database ---------------------------------------------------------------------------------


def test_rds_postgresql(prod: Any, modules: dict[str, Any], ic: Any) -> None:
    db = prod.inputs("database")
    assert re.fullmatch(r"15(\.\d+)?", db["engine_version"]), "PostgreSQL 15.x"
    assert db["instance_class"] == "db.t3.medium"
    assert db["allocated_storage_gb"] == 100
    assert db["multi_az"] is True
    assert db["backup_retention_days"] == 7
    assert db["create_read_replica"] is True
    assert db["snapshot_retention_days"] == 30

    primary = modules["database"].resources["aws_db_instance"]["primary"]
    _, scope = prod.scope("database")
    assert primary["engine"] == "postgres"
    assert re.fullmatch(r"15(\.\d+)?", ic.resolve(primary["engine_version"], scope))
    assert ic.resolve(primary["instance_class"], scope) == "db.t3.medium"
    assert ic.resolve(primary["allocated_storage"], scope) == 100
    assert primary["storage_type"] == "gp3"
    assert ic.resolve(primary["multi_az"], scope) is True
    assert ic.resolve(primary["backup_retention_period"], scope) == 7
    assert primary["storage_encrypted"] is True
    assert primary["kms_key_id"] == "${var.kms_key_arn}"
    assert primary["publicly_accessible"] is False
    assert primary["manage_master_user_password"] is True
    assert primary["master_user_secret_kms_key_id"] == "${var.secrets_kms_key_arn}"


def test_read_replica(modules: dict[str, Any]) -> None:
    replica = modules["database"].resources["aws_db_instance"]["replica"]
    assert replica["replicate_source_db"] == "${aws_db_instance.primary.identifier}"
    assert replica["count"] == "${var.create_read_replica ? 1 : 0}"
    assert replica["storage_encrypted"] is True


def test_parameter_group_enforces_tls(modules: dict[str, Any]) -> None:
    group = modules["database"].resources["aws_db_parameter_group"]["this"]
    assert group["family"] == "postgres15"
    params = {p["name"]: p["value"] for p in group["parameter"]}
    assert params["rds.force_ssl"] == "1"
    assert params["ssl_min_protocol_version"] == "TLSv1.2"
    assert params["log_parameter_max_length"] == "0", "no PHI from bind parameters in logs"


def test_backup_plan_daily_30_days_optional_copy(
    modules: dict[str, Any], ic: Any, prod: Any
) -> None:
    res = modules["database"].resources
    rule = res["aws_backup_plan"]["this"]["rule"][0]
    _, scope = prod.scope("database")
    assert re.fullmatch(r"cron\(\d+ \d+ \* \* \? \*\)", ic.resolve(rule["schedule"], scope)), (
        "daily"
    )
    assert ic.resolve(rule["lifecycle"][0]["delete_after"], scope) == 30
    copy = rule["dynamic"][0]["copy_action"]
    assert copy["for_each"] == (
        "${var.backup_copy_destination_vault_arn == null ? [] : [var.backup_copy_destination_vault_arn]}"
    )
    assert copy["content"][0]["destination_vault_arn"] == "${copy_action.value}"
    assert res["aws_backup_vault"]["this"]["kms_key_arn"] == "${var.kms_key_arn}"
    assert res["aws_backup_selection"]["postgres"]["resources"] == [
        "${aws_db_instance.primary.arn}"
    ]


# --- cache, messaging, monitoring -------------------------------------------------------------


def test_redis_primary_replica_encrypted_auth(prod: Any, modules: dict[str, Any], ic: Any) -> None:
    cache = prod.inputs("cache")
    assert cache["replica_count"] == 1
    assert cache["multi_az"] is True
    group = modules["cache"].resources["aws_elasticache_replication_group"]["this"]
    _, scope = prod.scope("cache")
    assert group["num_cache_clusters"] == "${1 + var.replica_count}"  # primary + 1 replica
    assert group["at_rest_encryption_enabled"] is True
    assert group["transit_encryption_enabled"] is True
    assert group["kms_key_id"] == "${var.kms_key_arn}"
    assert group["auth_token"] == "${random_password.auth_token.result}"
    assert ic.resolve(group["automatic_failover_enabled"], scope) is True
    version = modules["cache"].resources["aws_secretsmanager_secret_version"]["auth"]
    assert version["secret_id"] == "${var.auth_secret_arn}"


def test_rabbitmq_three_node_cluster(prod: Any, modules: dict[str, Any]) -> None:
    mq = prod.inputs("messaging")
    assert mq["deployment_mode"] == "CLUSTER_MULTI_AZ"
    broker = modules["messaging"].resources["aws_mq_broker"]["this"]
    assert broker["engine_type"] == "RabbitMQ"
    assert broker["deployment_mode"] == "${var.deployment_mode}"
    assert broker["publicly_accessible"] is False


def test_monitoring_stack(modules: dict[str, Any]) -> None:
    res = modules["monitoring"].resources
    assert "this" in res["aws_prometheus_workspace"]
    assert "this" in res["aws_prometheus_alert_manager_definition"]
    grafana = res["aws_grafana_workspace"]["this"]
    assert "PROMETHEUS" in grafana["data_sources"]
    assert modules["monitoring"].locals["severities"] == '${toset(["critical", "warning"])}'
    assert res["aws_sns_topic"]["alerts"]["kms_master_key_id"] == "${var.logs_kms_key_arn}"


def test_the_workspace_evaluates_the_tested_rules_every_15_seconds(
    modules: dict[str, Any],
) -> None:
    """The rules promtool and the live alert test check, at the pace they assume: a group
    Managed Prometheus evaluates once a minute would miss the one-minute alerting budget."""
    monitoring = modules["monitoring"]
    rules_dir = monitoring.locals["rules_dir"]
    assert rules_dir == "${path.module}/../../../deploy/prometheus/rules"
    rule_files = sorted((monitoring.path / "../../../deploy/prometheus/rules").glob("*.rules.yml"))
    assert len(rule_files) >= 2  # the gateway's rules and the dependencies'
    namespaces = monitoring.locals["rule_namespaces"]
    assert 'fileset(local.rules_dir, "*.rules.yml")' in namespaces
    assert "interval = var.rule_evaluation_interval" in namespaces
    assert monitoring.variables["rule_evaluation_interval"]["default"] == "15s"
    group = monitoring.resources["aws_prometheus_rule_group_namespace"]["gateway"]
    assert group["for_each"] == "${local.rule_namespaces}"
    scrape = modules["compute"].locals["adot_config"]
    assert 'scrape_interval = "15s"' in scrape


# --- security ---------------------------------------------------------------------------------


def test_secret_rotation_every_30_days(prod: Any, modules: dict[str, Any], ic: Any) -> None:
    assert prod.inputs("security")["secret_rotation_days"] == 30
    rotation = modules["security"].resources["aws_secretsmanager_secret_rotation"]["gateway"]
    _, scope = prod.scope("security")
    assert ic.resolve(rotation["rotation_rules"][0]["automatically_after_days"], scope) == 30
    assert rotation["for_each"] == "${local.secret_descriptions}"
    assert set(modules["security"].locals["secret_descriptions"]) == {"database", "redis", "amqp"}
    secret = modules["security"].resources["aws_secretsmanager_secret"]["gateway"]
    assert secret["kms_key_id"] == "${aws_kms_key.secrets.arn}"


def test_kms_keys_rotate(all_configs: dict[str, Any]) -> None:
    keys = [
        (where, name, body)
        for where, cfg in all_configs.items()
        for name, body in cfg.resources.get("aws_kms_key", {}).items()
    ]
    assert len(keys) >= 5
    for where, name, body in keys:
        assert body["enable_key_rotation"] is True, f"{where} aws_kms_key.{name}"
        assert body["policy"].startswith("${data.aws_iam_policy_document."), (
            f"{where} aws_kms_key.{name}"
        )


def test_cloudtrail(modules: dict[str, Any]) -> None:
    trail = modules["security"].resources["aws_cloudtrail"]["this"]
    assert trail["enable_log_file_validation"] is True
    assert trail["is_multi_region_trail"] is True
    assert trail["kms_key_id"] == "${aws_kms_key.logs.arn}"
    assert trail["cloud_watch_logs_group_arn"].startswith(
        "${aws_cloudwatch_log_group.cloudtrail.arn}"
    )


def test_every_log_group_is_encrypted_and_retained(all_configs: dict[str, Any]) -> None:
    for where, cfg in all_configs.items():
        for name, group in cfg.resources.get("aws_cloudwatch_log_group", {}).items():
            assert "kms_key_id" in group, f"{where} aws_cloudwatch_log_group.{name}"
            assert "retention_in_days" in group, f"{where} aws_cloudwatch_log_group.{name}"


def test_bootstrap_state_bucket_and_lock_table(bootstrap: Any) -> None:
    res = bootstrap.resources
    assert (
        res["aws_s3_bucket_versioning"]["state"]["versioning_configuration"][0]["status"]
        == "Enabled"
    )
    sse = res["aws_s3_bucket_server_side_encryption_configuration"]["state"]["rule"][0]
    assert sse["apply_server_side_encryption_by_default"][0]["sse_algorithm"] == "aws:kms"
    pab = res["aws_s3_bucket_public_access_block"]["state"]
    assert all(
        pab[k] is True
        for k in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )
    tls = bootstrap.data["aws_iam_policy_document"]["state_bucket"]["statement"][0]
    assert tls["effect"] == "Deny"
    assert tls["condition"][0] == {
        "test": "Bool",
        "variable": "aws:SecureTransport",
        "values": ["false"],
    }
    table = res["aws_dynamodb_table"]["locks"]
    assert table["hash_key"] == "LockID"
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["server_side_encryption"][0]["enabled"] is True
    assert table["server_side_encryption"][0]["kms_key_arn"] == "${aws_kms_key.state.arn}"


def test_environment_outputs_for_deploy_controller(environments: dict[str, Any]) -> None:
    needed = {
        "deploy_role_arn",
        "ecs_cluster_name",
        "ecs_service_names",
        "task_definition_families",
        "container_name",
        "https_listener_arn",
        "target_group_arns",
        "ecr_repository_url",
        "gateway_secret_arns",
        "alb_dns_name",
    }
    for env, cfg in environments.items():
        assert needed <= set(cfg.outputs), f"{env}: missing outputs {needed - set(cfg.outputs)}"


def test_price_table_is_dated_with_source() -> None:
    from .conftest import TERRAFORM

    tables = sorted((TERRAFORM / "pricing").glob("prices-*-*.json"))
    assert tables
    for table in tables:
        about = json.loads(table.read_text())["_about"]
        assert about["source"]
        assert about["as_of"] in table.name
        assert about["region"] in table.name
