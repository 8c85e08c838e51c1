# Security: KMS keys, the gateway's secrets and their rotation, CloudTrail, the security groups of
# every tier, and the IAM roles of the gateway task and of the blue/green deploy pipeline.
#
# IAM policies are written as aws_iam_policy_document data sources only (never inline JSON), so
# tests/infra can read every statement and prove that no Allow grants "*" actions and that
# Resource "*" appears only for the AWS actions that support no resource-level permission.

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  root_arn   = "arn:${local.partition}:iam::${local.account_id}:root"
  trail_name = "${var.name}-trail"
  trail_arn  = "arn:${local.partition}:cloudtrail:${local.region}:${local.account_id}:trail/${local.trail_name}"

  # Names the compute module gives its resources (same convention, asserted by tests/infra), so
  # that the IAM policies below name exact ARNs without depending on the compute module.
  cluster_name       = "${var.name}-cluster"
  service_arns       = [for c in ["blue", "green"] : "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${local.cluster_name}/${var.name}-gateway-${c}"]
  ecr_repository_arn = "arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/${var.name}/gateway"
  log_group_arn      = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group"
  container_log_group_arns = [
    "${local.log_group_arn}:/ecs/${var.name}/gateway",
    "${local.log_group_arn}:/ecs/${var.name}/adot-collector",
  ]
  metrics_log_group_arn = "${local.log_group_arn}:/ecs/${var.name}/metrics"
  alb_arn_path          = "app/${var.name}-alb"

  # Key administration and use are delegated to IAM in this account (the key policy's account
  # statements), spelled out action by action instead of "kms:*".
  kms_admin_actions = [
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
  ]
  kms_usage_actions = [
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ListGrants",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:RetireGrant",
    "kms:RevokeGrant",
  ]
}

# =============================================================================================
# KMS keys: "data" (RDS, ElastiCache, AWS Backup, ECR), "secrets" (Secrets Manager) and "logs"
# (CloudWatch Logs, CloudTrail, SNS alert topics, Amazon Managed Prometheus).
# =============================================================================================

data "aws_iam_policy_document" "kms_data" {
  #checkov:skip=CKV_AWS_109:KMS key policy: Resource "*" is the key itself; administration is delegated to this account's IAM.
  #checkov:skip=CKV_AWS_111:KMS key policy: Resource "*" is the key itself; use is delegated to this account's IAM.
  #checkov:skip=CKV_AWS_356:KMS key policy: Resource "*" is the key itself (a key policy cannot name another resource).
  statement {
    sid       = "AccountKeyAdministration"
    effect    = "Allow"
    actions   = local.kms_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }

  statement {
    sid       = "AccountKeyUseThroughIam"
    effect    = "Allow"
    actions   = local.kms_usage_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }
}

resource "aws_kms_key" "data" {
  description             = "${var.name}: RDS, ElastiCache, AWS Backup and ECR encryption at rest"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_data.json
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

data "aws_iam_policy_document" "kms_secrets" {
  #checkov:skip=CKV_AWS_109:KMS key policy: Resource "*" is the key itself; administration is delegated to this account's IAM.
  #checkov:skip=CKV_AWS_111:KMS key policy: Resource "*" is the key itself; use is delegated to this account's IAM.
  #checkov:skip=CKV_AWS_356:KMS key policy: Resource "*" is the key itself (a key policy cannot name another resource).
  statement {
    sid       = "AccountKeyAdministration"
    effect    = "Allow"
    actions   = local.kms_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }

  statement {
    sid       = "AccountKeyUseThroughIam"
    effect    = "Allow"
    actions   = local.kms_usage_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }
}

resource "aws_kms_key" "secrets" {
  description             = "${var.name}: Secrets Manager secrets of the gateway and the RDS master credentials"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_secrets.json
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.name}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

data "aws_iam_policy_document" "kms_logs" {
  #checkov:skip=CKV_AWS_109:KMS key policy: Resource "*" is the key itself; administration is delegated to this account's IAM.
  #checkov:skip=CKV_AWS_111:KMS key policy: Resource "*" is the key itself; use is delegated to this account's IAM.
  #checkov:skip=CKV_AWS_356:KMS key policy: Resource "*" is the key itself (a key policy cannot name another resource).
  statement {
    sid       = "AccountKeyAdministration"
    effect    = "Allow"
    actions   = local.kms_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }

  statement {
    sid       = "AccountKeyUseThroughIam"
    effect    = "Allow"
    actions   = local.kms_usage_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.root_arn]
    }
  }

  statement {
    sid    = "CloudWatchLogsEncryption"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
    }
  }

  statement {
    sid       = "CloudTrailEncryptLogs"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:cloudtrail:arn"
      values   = ["arn:${local.partition}:cloudtrail:*:${local.account_id}:trail/*"]
    }
  }

  statement {
    sid       = "CloudTrailDescribeKey"
    effect    = "Allow"
    actions   = ["kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  # CloudWatch alarms and the Amazon Managed Prometheus alert manager publish to the encrypted
  # SNS alert topics.
  statement {
    sid       = "AlertPublishersUseKeyForSns"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "aps.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "logs" {
  description             = "${var.name}: CloudWatch Logs, CloudTrail, SNS alert topics, Managed Prometheus"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms_logs.json
}

resource "aws_kms_alias" "logs" {
  name          = "alias/${var.name}-logs"
  target_key_id = aws_kms_key.logs.key_id
}

# =============================================================================================
# Secrets of the gateway (injected by ECS as COLLABGATE_DATABASE_URL, COLLABGATE_REDIS_URL,
# COLLABGATE_AMQP_URL from each secret's "url" key), rotated every var.secret_rotation_days.
# This module owns the secrets, their key and their rotation; the database, cache and messaging
# modules generate the initial credentials and write the first value (they know the endpoint).
# The RDS master credentials are a separate, RDS-managed secret (see the database module).
# =============================================================================================

locals {
  secret_descriptions = {
    database = "collabgate gateway PostgreSQL application credentials; key url -> COLLABGATE_DATABASE_URL"
    redis    = "collabgate ElastiCache Redis AUTH token; key url -> COLLABGATE_REDIS_URL"
    amqp     = "collabgate Amazon MQ (RabbitMQ) credentials; key url -> COLLABGATE_AMQP_URL"
  }
}

resource "aws_secretsmanager_secret" "gateway" {
  for_each = local.secret_descriptions

  name                    = "${var.name}/gateway/${each.key}"
  description             = each.value
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.secret_recovery_window_days
}

resource "aws_secretsmanager_secret_rotation" "gateway" {
  for_each = local.secret_descriptions

  secret_id           = aws_secretsmanager_secret.gateway[each.key].id
  rotation_lambda_arn = var.rotation_lambda_arn
  # The first value is written by the module that owns the endpoint (database, cache,
  # messaging); the first rotation runs on schedule, not before that value exists.
  rotate_immediately = false

  rotation_rules {
    automatically_after_days = var.secret_rotation_days
  }
}

# =============================================================================================
# Security groups: each tier opens exactly the port the next tier needs. The only rules open to
# 0.0.0.0/0 are the load balancer's 443 (HTTPS/WSS) and 80 (which only redirects to 443).
# =============================================================================================

resource "aws_security_group" "alb" {
  #checkov:skip=CKV2_AWS_5:Attached in another module (compute, database, cache or messaging) through this module's outputs; checkov does not follow module outputs.
  name        = "${var.name}-alb"
  description = "collabgate ALB: HTTPS/WSS from the internet, HTTP only for the redirect to HTTPS"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-alb"
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS and WSS from clients"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_ingress_rule" "alb_http_redirect" {
  #checkov:skip=CKV_AWS_260:Port 80 only reaches the listener that answers 301 to HTTPS; no request is forwarded on it.
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from clients, answered with a redirect to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "alb_to_gateway" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the gateway tasks (HTTP and WebSocket, health checks)"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_security_group" "gateway" {
  #checkov:skip=CKV2_AWS_5:Attached in another module (compute, database, cache or messaging) through this module's outputs; checkov does not follow module outputs.
  name        = "${var.name}-gateway"
  description = "collabgate gateway tasks: traffic from the ALB only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-gateway"
  }
}

resource "aws_vpc_security_group_ingress_rule" "gateway_from_alb" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "From the ALB"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_https" {
  security_group_id = aws_security_group.gateway.id
  description       = "HTTPS to AWS APIs (ECR, Secrets Manager, CloudWatch, AMP) and the identity provider's JWKS, through the NAT gateways"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_database" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_cache" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "Redis (TLS)"
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
  referenced_security_group_id = aws_security_group.cache.id
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_mq" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "AMQPS to RabbitMQ"
  ip_protocol                  = "tcp"
  from_port                    = var.amqp_port
  to_port                      = var.amqp_port
  referenced_security_group_id = aws_security_group.mq.id
}

resource "aws_security_group" "database" {
  #checkov:skip=CKV2_AWS_5:Attached in another module (compute, database, cache or messaging) through this module's outputs; checkov does not follow module outputs.
  name        = "${var.name}-database"
  description = "collabgate RDS PostgreSQL: from the gateway tasks only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-database"
  }
}

resource "aws_vpc_security_group_ingress_rule" "database_from_gateway" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_clients" {
  for_each = toset(var.additional_database_client_security_group_ids)

  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from an approved client (secret rotation function, migration runner)"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = each.value
}

resource "aws_security_group" "cache" {
  #checkov:skip=CKV2_AWS_5:Attached in another module (compute, database, cache or messaging) through this module's outputs; checkov does not follow module outputs.
  name        = "${var.name}-cache"
  description = "collabgate ElastiCache Redis: from the gateway tasks only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-cache"
  }
}

resource "aws_vpc_security_group_ingress_rule" "cache_from_gateway" {
  security_group_id            = aws_security_group.cache.id
  description                  = "Redis (TLS) from the gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.redis_port
  to_port                      = var.redis_port
  referenced_security_group_id = aws_security_group.gateway.id
}

resource "aws_security_group" "mq" {
  #checkov:skip=CKV2_AWS_5:Attached in another module (compute, database, cache or messaging) through this module's outputs; checkov does not follow module outputs.
  name        = "${var.name}-mq"
  description = "collabgate Amazon MQ RabbitMQ: AMQPS from the gateway tasks only"
  vpc_id      = var.vpc_id

  tags = {
    Name = "${var.name}-mq"
  }
}

resource "aws_vpc_security_group_ingress_rule" "mq_from_gateway" {
  security_group_id            = aws_security_group.mq.id
  description                  = "AMQPS from the gateway tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.amqp_port
  to_port                      = var.amqp_port
  referenced_security_group_id = aws_security_group.gateway.id
}

# =============================================================================================
# IAM: the ECS task execution role (pulls the image, writes logs, reads the three secrets), the
# task role (what the running containers may call: the ADOT sidecar's metric exports), and the
# deploy pipeline role (blue/green controller).
# =============================================================================================

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksAssume"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "task_execution" {
  name                 = "${var.name}-gateway-task-execution"
  description          = "ECS agent for the collabgate gateway: image pull, logs, secrets injection"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "task_execution" {
  statement {
    sid       = "EcrAuthorizationToken"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid    = "PullGatewayImage"
    effect = "Allow"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [local.ecr_repository_arn]
  }

  statement {
    sid       = "WriteContainerLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for arn in local.container_log_group_arns : "${arn}:*"]
  }

  statement {
    sid       = "ReadGatewaySecrets"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in aws_secretsmanager_secret.gateway : s.arn]
  }

  statement {
    sid       = "DecryptGatewaySecrets"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.secrets.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "gateway-task-execution"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}

resource "aws_iam_role" "task" {
  name                 = "${var.name}-gateway-task"
  description          = "collabgate gateway task: metric export by the ADOT sidecar, nothing else"
  assume_role_policy   = data.aws_iam_policy_document.ecs_tasks_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "task" {
  # The workspace ID is assigned by AWS; the statement is limited to this account's workspaces
  # tagged for this stack (the monitoring module sets the tag).
  statement {
    sid       = "RemoteWriteToManagedPrometheus"
    effect    = "Allow"
    actions   = ["aps:RemoteWrite"]
    resources = ["arn:${local.partition}:aps:${local.region}:${local.account_id}:workspace/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/collabgate:stack"
      values   = [var.name]
    }
  }

  # The ADOT awsemf exporter writes websocket_connections_total as CloudWatch embedded metric
  # format into this log group; CloudWatch turns it into the custom metric that autoscaling tracks.
  statement {
    sid    = "WriteEmbeddedMetrics"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = ["${local.metrics_log_group_arn}:*"]
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "gateway-task"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

data "aws_iam_policy_document" "deploy_assume" {
  statement {
    sid     = "GitHubActionsOidc"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:oidc-provider/token.actions.githubusercontent.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:environment:${var.github_environment}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${var.name}-deploy"
  description          = "collabgate blue/green deploy controller (GitHub Actions, environment ${var.github_environment})"
  assume_role_policy   = data.aws_iam_policy_document.deploy_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "deploy" {
  # Task definitions have no resource-level permission for registration, and Describe* calls
  # of ECS task definitions and of ELBv2 accept only "*".
  statement {
    sid    = "RegisterTaskDefinitions"
    effect = "Allow"
    actions = [
      "ecs:DescribeTaskDefinition",
      "ecs:RegisterTaskDefinition",
    ]
    resources = ["*"]
  }

  statement {
    sid    = "UpdateBlueAndGreenServices"
    effect = "Allow"
    actions = [
      "ecs:DescribeServices",
      "ecs:UpdateService",
    ]
    resources = local.service_arns
  }

  # Listener and rule IDs are assigned by AWS: the statements name this stack's load balancer
  # and are further limited to the resources the compute module tags for traffic shifting (the
  # HTTPS listener and its smoke-test rules - not the HTTP redirect listener).
  statement {
    sid       = "ShiftListenerWeights"
    effect    = "Allow"
    actions   = ["elasticloadbalancing:ModifyListener"]
    resources = ["arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:listener/${local.alb_arn_path}/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/collabgate:traffic-shift"
      values   = ["true"]
    }
  }

  statement {
    sid       = "ModifyListenerRules"
    effect    = "Allow"
    actions   = ["elasticloadbalancing:ModifyRule"]
    resources = ["arn:${local.partition}:elasticloadbalancing:${local.region}:${local.account_id}:listener-rule/${local.alb_arn_path}/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/collabgate:traffic-shift"
      values   = ["true"]
    }
  }

  statement {
    sid    = "DescribeLoadBalancing"
    effect = "Allow"
    actions = [
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroups",
      "elasticloadbalancing:DescribeTargetHealth",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "PassTaskRolesToEcs"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task.arn, aws_iam_role.task_execution.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "deploy" {
  name   = "blue-green-deploy"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

# =============================================================================================
# CloudTrail (DEVOPS-001.6): multi-region trail with log file validation, KMS-encrypted, in a
# versioned bucket, also streamed to CloudWatch Logs for metric filters and alarms.
# =============================================================================================

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_144:Access logs and ALB logs are operational logs kept in-region; CloudTrail (the audit record) is multi-region.
  #checkov:skip=CKV_AWS_145:S3 server access logging and ALB access logs support only SSE-S3 (AES256) on their target bucket.
  #checkov:skip=CKV2_AWS_62:No consumer of object-created events for log objects.
  bucket = "${var.name}-logs-${local.account_id}"
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-operational-logs"
    status = "Enabled"

    filter {}

    transition {
      days          = 30
      storage_class = "STANDARD_IA"
    }

    expiration {
      days = var.access_log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_elb_service_account" "this" {}

data "aws_iam_policy_document" "logs_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]

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
    sid       = "S3ServerAccessLogs"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/s3-access/*"]

    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "AlbAccessLogs"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/alb/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.this.arn]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.logs]
}

resource "aws_s3_bucket" "cloudtrail" {
  #checkov:skip=CKV_AWS_144:The trail is multi-region and its files are integrity-validated; cross-region replication of the bucket is an organisation-level decision (org trail to a log-archive account).
  #checkov:skip=CKV2_AWS_62:No consumer of object-created events; the trail streams to CloudWatch Logs for alerting.
  bucket = "${var.name}-cloudtrail-${local.account_id}"
}

resource "aws_s3_bucket_ownership_controls" "cloudtrail" {
  bucket = aws_s3_bucket.cloudtrail.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "cloudtrail" {
  bucket                  = aws_s3_bucket.cloudtrail.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "cloudtrail" {
  bucket = aws_s3_bucket.cloudtrail.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "cloudtrail" {
  bucket = aws_s3_bucket.cloudtrail.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.logs.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "cloudtrail" {
  bucket        = aws_s3_bucket.cloudtrail.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/cloudtrail/"
}

resource "aws_s3_bucket_lifecycle_configuration" "cloudtrail" {
  bucket = aws_s3_bucket.cloudtrail.id

  rule {
    id     = "archive-then-expire-audit-logs"
    status = "Enabled"

    filter {}

    transition {
      days          = 90
      storage_class = "GLACIER_IR"
    }

    expiration {
      days = var.cloudtrail_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "cloudtrail_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.cloudtrail.arn, "${aws_s3_bucket.cloudtrail.arn}/*"]

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
    sid       = "CloudTrailAclCheck"
    effect    = "Allow"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.cloudtrail.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "CloudTrailWrite"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.cloudtrail.arn}/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }
}

resource "aws_s3_bucket_policy" "cloudtrail" {
  bucket = aws_s3_bucket.cloudtrail.id
  policy = data.aws_iam_policy_document.cloudtrail_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.cloudtrail]
}

resource "aws_cloudwatch_log_group" "cloudtrail" {
  name              = "/aws/cloudtrail/${var.name}"
  retention_in_days = var.cloudtrail_log_group_retention_days
  kms_key_id        = aws_kms_key.logs.arn
}

data "aws_iam_policy_document" "cloudtrail_assume" {
  statement {
    sid     = "CloudTrailAssume"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }
}

resource "aws_iam_role" "cloudtrail" {
  name               = "${var.name}-cloudtrail-logs"
  assume_role_policy = data.aws_iam_policy_document.cloudtrail_assume.json
}

data "aws_iam_policy_document" "cloudtrail_logs" {
  statement {
    sid       = "DeliverTrailToCloudWatchLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.cloudtrail.arn}:log-stream:${local.account_id}_CloudTrail_${local.region}*"]
  }
}

resource "aws_iam_role_policy" "cloudtrail" {
  name   = "deliver-to-cloudwatch-logs"
  role   = aws_iam_role.cloudtrail.id
  policy = data.aws_iam_policy_document.cloudtrail_logs.json
}

resource "aws_cloudtrail" "this" {
  #checkov:skip=CKV_AWS_252:An SNS message per delivered log file is noise, not an alert; integrity comes from log file validation and alerting from the CloudWatch Logs stream.
  name                          = local.trail_name
  s3_bucket_name                = aws_s3_bucket.cloudtrail.id
  kms_key_id                    = aws_kms_key.logs.arn
  enable_log_file_validation    = true
  is_multi_region_trail         = true
  include_global_service_events = true
  cloud_watch_logs_group_arn    = "${aws_cloudwatch_log_group.cloudtrail.arn}:*"
  cloud_watch_logs_role_arn     = aws_iam_role.cloudtrail.arn

  # Management events, read and write: this includes every secretsmanager:GetSecretValue, KMS
  # Decrypt, IAM and ELB listener change (the blue/green weight shifts).
  event_selector {
    read_write_type           = "All"
    include_management_events = true

    # Object-level reads and writes of the Terraform state (which holds initial secrets).
    dynamic "data_resource" {
      for_each = length(var.audited_s3_bucket_arns) > 0 ? [1] : []

      content {
        type   = "AWS::S3::Object"
        values = [for arn in var.audited_s3_bucket_arns : "${arn}/"]
      }
    }
  }

  depends_on = [
    aws_s3_bucket_policy.cloudtrail,
    aws_iam_role_policy.cloudtrail,
  ]
}
