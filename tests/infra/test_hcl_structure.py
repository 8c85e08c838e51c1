"""Every .tf file parses; variables and outputs are documented; layout, versions, backends and
default tags are as terraform/README.md describes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import ENVIRONMENTS, MODULE_NAMES, TERRAFORM, all_tf_files


@pytest.mark.parametrize("path", all_tf_files(), ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_every_tf_file_parses(path: Path, ic: Any) -> None:
    doc = ic.parse_file(path)
    assert isinstance(doc, dict)


def test_tf_files_exist() -> None:
    assert len(all_tf_files()) >= 7 * 4 + 3 * 5 + 3


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tfvars_parse(env: str, ic: Any) -> None:
    values = ic.load_tfvars(TERRAFORM / "environments" / env / "terraform.tfvars")
    assert values["environment"] == env


@pytest.mark.parametrize("module", MODULE_NAMES)
def test_module_layout(module: str) -> None:
    directory = TERRAFORM / "modules" / module
    for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf"):
        assert (directory / name).is_file(), f"modules/{module}/{name} missing"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_layout(env: str) -> None:
    directory = TERRAFORM / "environments" / env
    for name in ("main.tf", "variables.tf", "outputs.tf", "backend.tf", "terraform.tfvars"):
        assert (directory / name).is_file(), f"environments/{env}/{name} missing"


def test_variables_have_type_and_description(all_configs: dict[str, Any]) -> None:
    problems = []
    for where, cfg in all_configs.items():
        for name, body in cfg.variables.items():
            if "type" not in body:
                problems.append(f"{where}: variable {name} has no type")
            if not str(body.get("description", "")).strip():
                problems.append(f"{where}: variable {name} has no description")
    assert not problems, "\n".join(problems)


def test_outputs_have_description(all_configs: dict[str, Any]) -> None:
    problems = [
        f"{where}: output {name} has no description"
        for where, cfg in all_configs.items()
        for name, body in cfg.outputs.items()
        if not str(body.get("description", "")).strip()
    ]
    assert not problems, "\n".join(problems)


def _required(cfg: Any) -> tuple[str | None, dict[str, Any]]:
    version, providers = None, {}
    for block in cfg.terraform:
        version = block.get("required_version", version)
        for rp in block.get("required_providers", []):
            providers.update(rp)
    return version, providers


def test_versions_pinned(all_configs: dict[str, Any]) -> None:
    for where, cfg in all_configs.items():
        version, providers = _required(cfg)
        assert version is not None, where
        assert re.fullmatch(r">= ?1\.(5|[6-9]|\d\d)(\.\d+)?", version), where
        aws = providers.get("aws")
        assert aws, f"{where}: aws provider not required"
        assert aws["source"] == "hashicorp/aws"
        assert re.fullmatch(r"~> ?5\.\d+", aws["version"]), f"{where}: aws {aws['version']}"


def test_module_variables_used_by_environment_exist(
    environments: dict[str, Any], modules: dict[str, Any]
) -> None:
    """Every argument of a module call is a variable of that module, and every required
    variable (no default) is given."""
    for env, cfg in environments.items():
        assert set(cfg.modules) == set(MODULE_NAMES), env
        for name, call in cfg.modules.items():
            assert call["source"] == f"../../modules/{name}"
            declared = modules[name].variables
            args = {k for k in call if k not in {"source", "providers", "depends_on"}}
            unknown = args - set(declared)
            assert not unknown, f"{env}: module {name} given unknown inputs {unknown}"
            missing = {v for v, body in declared.items() if "default" not in body} - args
            assert not missing, f"{env}: module {name} misses required inputs {missing}"
            assert "depends_on" not in call


def test_environment_variables_all_set(environments: dict[str, Any], ic: Any) -> None:
    for env, cfg in environments.items():
        tfvars = ic.load_tfvars(TERRAFORM / "environments" / env / "terraform.tfvars")
        required = {v for v, body in cfg.variables.items() if "default" not in body}
        assert required <= set(tfvars), f"{env}: tfvars lacks {required - set(tfvars)}"
        assert set(tfvars) <= set(cfg.variables), (
            f"{env}: unknown tfvars {set(tfvars) - set(cfg.variables)}"
        )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_remote_state_s3_with_dynamodb_lock(env: str, environments: dict[str, Any]) -> None:
    backends = [b for block in environments[env].terraform for b in block.get("backend", [])]
    assert len(backends) == 1
    s3 = backends[0]["s3"]
    assert s3["bucket"] == f"collabgate-{env}-terraform-state"
    assert s3["dynamodb_table"] == f"collabgate-{env}-terraform-locks"
    assert s3["encrypt"] is True
    assert env in s3["key"]


def test_bootstrap_names_match_backends(bootstrap: Any) -> None:
    assert bootstrap.locals["bucket_name"] == (
        '${coalesce(var.state_bucket_name, "collabgate-${var.environment}-terraform-state")}'
    )
    assert bootstrap.locals["table_name"] == (
        '${coalesce(var.lock_table_name, "collabgate-${var.environment}-terraform-locks")}'
    )


@pytest.mark.parametrize("root", [*(f"environments/{e}" for e in ENVIRONMENTS), "bootstrap"])
def test_provider_default_tags(root: str, all_configs: dict[str, Any], ic: Any) -> None:
    """Every taggable resource gets Environment and Project through the provider's default_tags."""
    cfg = all_configs[root]
    aws = [p["aws"] for p in cfg.providers if "aws" in p]
    assert aws, f"{root}: no aws provider block"
    for provider in aws:
        tags = provider["default_tags"][0]["tags"]
        assert tags["Project"] == "collabgate"
        assert "Environment" in tags
    if root.startswith("environments/"):
        env = root.split("/")[1]
        _, scope = ic.environment_scope(env)
        assert ic.resolve(aws[0]["default_tags"][0]["tags"]["Environment"], scope) == env


def test_modules_declare_no_provider(modules: dict[str, Any]) -> None:
    """Providers (and so default_tags) come from the environment; a module's own provider
    block would drop them."""
    for name, cfg in modules.items():
        assert not cfg.providers, f"module {name} configures a provider"


def test_compute_names_match_security_iam_conventions(modules: dict[str, Any]) -> None:
    """The security module's IAM policies name the compute module's resources by convention."""
    comp, sec = modules["compute"], modules["security"]
    assert comp.locals["cluster_name"] == "${var.name}-cluster"
    assert sec.locals["cluster_name"] == "${var.name}-cluster"
    assert (
        comp.locals["service_name"]
        == '${{for c in local.colors : c => "${var.name}-gateway-${c}"}}'
    )
    assert "service/${local.cluster_name}/${var.name}-gateway-${c}" in sec.locals["service_arns"]
    assert comp.resources["aws_ecr_repository"]["gateway"]["name"] == "${var.name}/gateway"
    assert sec.locals["ecr_repository_arn"].endswith(":repository/${var.name}/gateway")
    groups = {k: v["name"] for k, v in comp.resources["aws_cloudwatch_log_group"].items()}
    assert groups["gateway"] == "/ecs/${var.name}/gateway"
    assert groups["adot"] == "/ecs/${var.name}/adot-collector"
    assert groups["metrics"] == "/ecs/${var.name}/metrics"
    assert sec.locals["container_log_group_arns"] == [
        "${local.log_group_arn}:/ecs/${var.name}/gateway",
        "${local.log_group_arn}:/ecs/${var.name}/adot-collector",
    ]
    assert sec.locals["metrics_log_group_arn"] == "${local.log_group_arn}:/ecs/${var.name}/metrics"
    assert comp.resources["aws_lb"]["this"]["name"] == "${var.name}-alb"
    assert sec.locals["alb_arn_path"] == "app/${var.name}-alb"
    https = comp.resources["aws_lb_listener"]["https"]
    assert https["tags"]["collabgate:traffic-shift"] == "true"
    assert (
        comp.resources["aws_lb_listener_rule"]["smoke_test"]["tags"]["collabgate:traffic-shift"]
        == "true"
    )
    assert "tags" not in comp.resources["aws_lb_listener"]["http_redirect"]
