# Monitoring: Amazon Managed Service for Prometheus (receives the ADOT sidecars' remote writes,
# evaluates the alert rules, routes alerts to SNS through its managed Alertmanager), Amazon
# Managed Grafana (dashboards over Prometheus and CloudWatch), SNS alert topics (critical,
# warning), and CloudWatch alarms on the data tier (RDS, ElastiCache); the compute module adds
# its own alarms (ALB, targets) on the warning/critical topics.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  severities = toset(["critical", "warning"])

  # The alert and recording rules of deploy/prometheus/rules/, the set promtool tests and the
  # live alert test exercise (tests/monitoring), one rule namespace per file. Each group gets
  # var.rule_evaluation_interval: Managed Prometheus evaluates a group without one every minute,
  # which would break the rules' "fires within one minute" budget. Runbook links point at
  # var.runbook_base_url.
  rules_dir              = "${path.module}/../../../deploy/prometheus/rules"
  repository_runbook_url = "https://github.com/collabgate/collabgate/blob/main/docs/runbooks"
  rule_namespaces = var.alert_rules_yaml != null ? { custom = var.alert_rules_yaml } : {
    for file in fileset(local.rules_dir, "*.rules.yml") :
    trimsuffix(file, ".rules.yml") => replace(
      yamlencode({
        groups = [
          for group in yamldecode(file("${local.rules_dir}/${file}")).groups :
          merge(group, { interval = var.rule_evaluation_interval })
        ]
      }),
      local.repository_runbook_url,
      var.runbook_base_url
    )
  }
}

# =============================================================================================
# SNS alert topics
# =============================================================================================

resource "aws_sns_topic" "alerts" {
  for_each = local.severities

  name              = "${var.name}-alerts-${each.key}"
  kms_master_key_id = var.logs_kms_key_arn
}

data "aws_iam_policy_document" "alerts_topic" {
  for_each = local.severities

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts[each.key].arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts[each.key].arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "ManagedPrometheusAlertmanagerPublish"
    effect    = "Allow"
    actions   = ["sns:Publish", "sns:GetTopicAttributes"]
    resources = [aws_sns_topic.alerts[each.key].arn]

    principals {
      type        = "Service"
      identifiers = ["aps.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_prometheus_workspace.this.arn]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  for_each = local.severities

  arn    = aws_sns_topic.alerts[each.key].arn
  policy = data.aws_iam_policy_document.alerts_topic[each.key].json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = {
    for pair in setproduct(tolist(local.severities), var.alert_email_addresses) :
    "${pair[0]}-${pair[1]}" => { severity = pair[0], email = pair[1] }
  }

  topic_arn = aws_sns_topic.alerts[each.value.severity].arn
  protocol  = "email"
  endpoint  = each.value.email
}

# =============================================================================================
# Amazon Managed Service for Prometheus
# =============================================================================================

resource "aws_cloudwatch_log_group" "prometheus" {
  name              = "/aws/prometheus/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_prometheus_workspace" "this" {
  alias       = var.name
  kms_key_arn = var.logs_kms_key_arn

  logging_configuration {
    log_group_arn = "${aws_cloudwatch_log_group.prometheus.arn}:*"
  }

  # The gateway task role may remote-write only to workspaces carrying this tag.
  tags = {
    "collabgate:stack" = var.name
  }
}

resource "aws_prometheus_rule_group_namespace" "gateway" {
  for_each = local.rule_namespaces

  name         = "collabgate-${each.key}"
  workspace_id = aws_prometheus_workspace.this.id
  data         = each.value
}

resource "aws_prometheus_alert_manager_definition" "this" {
  workspace_id = aws_prometheus_workspace.this.id
  definition = yamlencode({
    alertmanager_config = yamlencode({
      route = {
        receiver        = "warning"
        group_by        = ["alertname"]
        group_wait      = "30s"
        group_interval  = "5m"
        repeat_interval = "4h"
        routes = [{
          receiver = "critical"
          matchers = ["severity=\"critical\""]
        }]
      }
      receivers = [
        for s in ["critical", "warning"] : {
          name = s
          sns_configs = [{
            topic_arn  = aws_sns_topic.alerts[s].arn
            sigv4      = { region = local.region }
            attributes = { severity = s }
          }]
        }
      ]
    })
  })
}

# =============================================================================================
# Amazon Managed Grafana (users sign in through IAM Identity Center)
# =============================================================================================

data "aws_iam_policy_document" "grafana_assume" {
  statement {
    sid     = "GrafanaAssume"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["grafana.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "grafana" {
  name               = "${var.name}-grafana"
  assume_role_policy = data.aws_iam_policy_document.grafana_assume.json
}

data "aws_iam_policy_document" "grafana" {
  statement {
    sid    = "QueryManagedPrometheus"
    effect = "Allow"
    actions = [
      "aps:DescribeWorkspace",
      "aps:GetLabels",
      "aps:GetMetricMetadata",
      "aps:GetSeries",
      "aps:QueryMetrics",
    ]
    resources = [aws_prometheus_workspace.this.arn]
  }

  # CloudWatch metric reads accept no resource-level permission.
  statement {
    sid    = "ReadCloudWatchMetrics"
    effect = "Allow"
    actions = [
      "cloudwatch:DescribeAlarmsForMetric",
      "cloudwatch:GetMetricData",
      "cloudwatch:GetMetricStatistics",
      "cloudwatch:ListMetrics",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "NotifyThroughSns"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [for t in aws_sns_topic.alerts : t.arn]
  }

  statement {
    sid       = "EncryptSnsMessages"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.logs_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "grafana" {
  name   = "grafana-data-sources"
  role   = aws_iam_role.grafana.id
  policy = data.aws_iam_policy_document.grafana.json
}

resource "aws_grafana_workspace" "this" {
  name                      = var.name
  description               = "collabgate dashboards (${var.name})"
  account_access_type       = "CURRENT_ACCOUNT"
  authentication_providers  = ["AWS_SSO"]
  permission_type           = "CUSTOMER_MANAGED"
  role_arn                  = aws_iam_role.grafana.arn
  data_sources              = ["PROMETHEUS", "CLOUDWATCH"]
  notification_destinations = ["SNS"]
  grafana_version           = var.grafana_version
}

resource "aws_grafana_role_association" "admins" {
  count = length(var.grafana_admin_group_ids) > 0 ? 1 : 0

  workspace_id = aws_grafana_workspace.this.id
  role         = "ADMIN"
  group_ids    = var.grafana_admin_group_ids
}

resource "aws_grafana_role_association" "viewers" {
  count = length(var.grafana_viewer_group_ids) > 0 ? 1 : 0

  workspace_id = aws_grafana_workspace.this.id
  role         = "VIEWER"
  group_ids    = var.grafana_viewer_group_ids
}

# =============================================================================================
# CloudWatch alarms on the data tier
# =============================================================================================

resource "aws_cloudwatch_metric_alarm" "rds_cpu" {
  alarm_name          = "${var.name}-rds-cpu"
  alarm_description   = "PostgreSQL primary CPU above 80% for 15 minutes"
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = var.db_instance_identifier }
  statistic           = "Average"
  period              = 300
  evaluation_periods  = 3
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts["warning"].arn]
  ok_actions          = [aws_sns_topic.alerts["warning"].arn]
}

resource "aws_cloudwatch_metric_alarm" "rds_free_storage" {
  alarm_name          = "${var.name}-rds-free-storage"
  alarm_description   = "PostgreSQL primary below 10 GB of free storage"
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = var.db_instance_identifier }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 10737418240
  comparison_operator = "LessThanThreshold"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts["critical"].arn]
  ok_actions          = [aws_sns_topic.alerts["critical"].arn]
}

resource "aws_cloudwatch_metric_alarm" "redis_memory" {
  alarm_name          = "${var.name}-redis-memory"
  alarm_description   = "Redis primary above 80% of its memory"
  namespace           = "AWS/ElastiCache"
  metric_name         = "DatabaseMemoryUsagePercentage"
  dimensions          = { CacheClusterId = "${var.redis_replication_group_id}-001" }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 2
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alerts["warning"].arn]
  ok_actions          = [aws_sns_topic.alerts["warning"].arn]
}
