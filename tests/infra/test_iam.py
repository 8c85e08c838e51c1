"""IAM: no Allow grants a wildcard action, and Resource "*" appears only for the AWS actions that
support no resource-level permission (listed below with the reason), or in KMS key policies,
where "*" means the key itself. Every policy is an aws_iam_policy_document, so every statement
is checked here."""

from __future__ import annotations

import re
from typing import Any

# AWS actions that accept only Resource "*" (no resource-level permissions), each one used on
# purpose:
ACTIONS_REQUIRING_STAR_RESOURCE = {
    "ecr:GetAuthorizationToken",  # registry login token (task execution role)
    "ecs:RegisterTaskDefinition",  # deploy role: task definitions have no ARN before registration
    "ecs:DescribeTaskDefinition",  # deploy role: read the family's latest revision
    "elasticloadbalancing:DescribeListeners",  # ELBv2 Describe* calls accept only "*"
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",  # deploy role: wait for the new colour to be healthy
    "cloudwatch:DescribeAlarmsForMetric",  # Grafana's CloudWatch data source
    "cloudwatch:GetMetricData",
    "cloudwatch:GetMetricStatistics",
    "cloudwatch:ListMetrics",
}

# Attributes that hold a policy, by resource type.
POLICY_ATTRIBUTES = {
    "aws_iam_role": ("assume_role_policy",),
    "aws_iam_role_policy": ("policy",),
    "aws_iam_policy": ("policy",),
    "aws_iam_user_policy": ("policy",),
    "aws_iam_group_policy": ("policy",),
    "aws_kms_key": ("policy",),
    "aws_s3_bucket_policy": ("policy",),
    "aws_sns_topic_policy": ("policy",),
    "aws_secretsmanager_secret_policy": ("policy",),
    "aws_ecr_repository_policy": ("policy",),
}

# AWS-managed policies that may be attached (service roles whose permissions AWS maintains).
ALLOWED_MANAGED_POLICIES = {
    "service-role/AmazonRDSEnhancedMonitoringRole",
    "service-role/AWSBackupServiceRolePolicyForBackup",
    "service-role/AWSBackupServiceRolePolicyForRestores",
}

_DOC_REF = re.compile(r"^\$\{data\.aws_iam_policy_document\.([A-Za-z0-9_]+)(\[[^\]]+\])?\.json\}$")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _documents(all_configs: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], bool]]:
    """(where, name, document, is_kms_key_policy) for every aws_iam_policy_document."""
    out = []
    for where, cfg in all_configs.items():
        key_policy_docs = {
            m.group(1)
            for key in cfg.resources.get("aws_kms_key", {}).values()
            if (m := _DOC_REF.match(key.get("policy", "")))
        }
        for name, doc in cfg.data.get("aws_iam_policy_document", {}).items():
            out.append((where, name, doc, name in key_policy_docs))
    return out


def test_there_are_policies_to_check(all_configs: dict[str, Any]) -> None:
    docs = _documents(all_configs)
    assert len(docs) >= 15
    assert sum(1 for *_, kms in docs if kms) >= 5


def test_every_policy_is_a_policy_document(all_configs: dict[str, Any]) -> None:
    problems = []
    for where, cfg in all_configs.items():
        for rtype, attrs in POLICY_ATTRIBUTES.items():
            for name, body in cfg.resources.get(rtype, {}).items():
                for attr in attrs:
                    if attr in body and not _DOC_REF.match(body[attr]):
                        problems.append(
                            f"{where}: {rtype}.{name}.{attr} is not a policy document: {body[attr][:60]}"
                        )
                if "inline_policy" in body:
                    problems.append(f"{where}: {rtype}.{name} has an inline_policy block")
    assert not problems, "\n".join(problems)


def test_only_allowed_managed_policies(all_configs: dict[str, Any]) -> None:
    for where, cfg in all_configs.items():
        for rtype in ("aws_iam_role_policy_attachment", "aws_iam_policy_attachment"):
            for name, body in cfg.resources.get(rtype, {}).items():
                arn = body["policy_arn"]
                assert ":iam::aws:policy/" in arn, f"{where} {rtype}.{name}"
                assert arn.split(":iam::aws:policy/")[1] in ALLOWED_MANAGED_POLICIES, (
                    f"{where} {rtype}.{name}"
                )
        assert "managed_policy_arns" not in str(cfg.resources.get("aws_iam_role", {}))


def test_no_wildcard_actions(all_configs: dict[str, Any]) -> None:
    problems = []
    for where, name, doc, _ in _documents(all_configs):
        for st in _as_list(doc.get("statement", [])):
            if st.get("effect", "Allow") != "Allow":
                continue  # a Deny may (and should) be broad
            assert "not_actions" not in st, f"{where} {name}: NotAction in an Allow"
            for action in _as_list(st["actions"]):
                if action == "*" or action.endswith(":*"):
                    problems.append(f"{where} {name} {st.get('sid')}: action {action}")
    assert not problems, "\n".join(problems)


def test_star_resource_only_where_no_narrower_exists(all_configs: dict[str, Any]) -> None:
    problems = []
    for where, name, doc, is_key_policy in _documents(all_configs):
        for st in _as_list(doc.get("statement", [])):
            if st.get("effect", "Allow") != "Allow":
                continue
            assert "not_resources" not in st, f"{where} {name}: NotResource in an Allow"
            resources = st.get("resources")
            if resources is None:
                assert "principals" in st, f"{where} {name} {st.get('sid')}: no resources"
                continue  # trust policy
            if isinstance(resources, str):  # an expression: a list built from exact ARNs
                assert '"*"' not in resources, f"{where} {name}: {resources}"
                continue
            if "*" not in resources:
                continue
            if is_key_policy:
                continue  # in a key policy "*" is the key itself
            extra = set(_as_list(st["actions"])) - ACTIONS_REQUIRING_STAR_RESOURCE
            if extra:
                problems.append(f'{where} {name} {st.get("sid")}: Resource "*" for {sorted(extra)}')
    assert not problems, "\n".join(problems)


def test_no_allow_to_anonymous_principals(all_configs: dict[str, Any]) -> None:
    for where, name, doc, _ in _documents(all_configs):
        for st in _as_list(doc.get("statement", [])):
            if st.get("effect", "Allow") != "Allow":
                continue
            for principal in _as_list(st.get("principals", [])):
                assert "*" not in _as_list(principal["identifiers"]), f"{where} {name}"


def test_id_wildcards_are_tag_constrained(modules: dict[str, Any]) -> None:
    """Where AWS assigns the ID (listener, rule, Prometheus workspace), the ARN ends in "/*" and
    the statement is limited by a resource tag the owning module sets."""
    for module in ("security",):
        for name, doc in modules[module].data["aws_iam_policy_document"].items():
            for st in _as_list(doc.get("statement", [])):
                for arn in _as_list(st.get("resources", [])):
                    if isinstance(arn, str) and re.search(
                        r":(listener|listener-rule|workspace)/.*\*$", arn
                    ):
                        variables = [c["variable"] for c in st.get("condition", [])]
                        assert any(v.startswith("aws:ResourceTag/") for v in variables), (
                            f"{name} {st['sid']}"
                        )


def test_deploy_role_permissions_are_exactly_the_blue_green_ones(modules: dict[str, Any]) -> None:
    doc = modules["security"].data["aws_iam_policy_document"]["deploy"]
    actions = {a for st in doc["statement"] for a in st["actions"]}
    assert actions == {
        "ecs:RegisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
        "ecs:UpdateService",
        "ecs:DescribeServices",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:ModifyRule",
        "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "iam:PassRole",
    }
    pass_role = next(st for st in doc["statement"] if st["actions"] == ["iam:PassRole"])
    assert pass_role["resources"] == [
        "${aws_iam_role.task.arn}",
        "${aws_iam_role.task_execution.arn}",
    ]
    assert pass_role["condition"][0]["variable"] == "iam:PassedToService"
    trust = modules["security"].data["aws_iam_policy_document"]["deploy_assume"]["statement"][0]
    sub = next(c for c in trust["condition"] if c["variable"].endswith(":sub"))
    assert sub["test"] == "StringEquals"
    assert sub["values"] == ["repo:${var.github_repository}:environment:${var.github_environment}"]
