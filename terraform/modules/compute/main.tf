# Compute: ECR repository, ECS Fargate cluster, the gateway's blue and green services (one task
# definition family each), the internet-facing ALB (HTTPS listener with a weighted forward to the
# blue and green target groups, HTTP -> HTTPS redirect), AWS WAF, and target-tracking autoscaling
# on CPU and on WebSocket connections per task.
#
# Resource names follow "${var.name}-cluster", "${var.name}-gateway-<colour>", "${var.name}/gateway"
# (ECR), "/ecs/${var.name}/..." (log groups) and "${var.name}-alb": the security module's IAM
# policies name exactly these ARNs (tests/infra checks that both sides agree).

data "aws_region" "current" {}

locals {
  region         = data.aws_region.current.name
  colors         = toset(["blue", "green"])
  cluster_name   = "${var.name}-cluster"
  service_name   = { for c in local.colors : c => "${var.name}-gateway-${c}" }
  gateway_image  = "${aws_ecr_repository.gateway.repository_url}:${var.image_tag}"
  container_name = "gateway"

  # Initial listener weights; afterwards the deploy controller owns them (100/0 -> 50/50 -> 0/100).
  initial_weights = { blue = 100, green = 0 }

  health_check_command = "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:${var.container_port}${var.container_health_check_path}', timeout=4).status == 200 else 1)"

  # AWS Distro for OpenTelemetry sidecar: scrapes the gateway's /metrics on localhost, remote-writes
  # everything to Amazon Managed Prometheus and publishes websocket_connections_total to
  # CloudWatch (embedded metric format) for the connections-per-task scaling policy.
  adot_config = {
    for c in local.colors : c => yamlencode({
      extensions = {
        sigv4auth = { region = local.region, service = "aps" }
      }
      receivers = {
        prometheus = {
          config = {
            # As deploy/prometheus/prometheus.yml: the alert rules' windows assume 15 s.
            global = { scrape_interval = "15s", scrape_timeout = "10s" }
            scrape_configs = [{
              job_name     = "collabgate-gateway"
              metrics_path = "/metrics"
              static_configs = [{
                targets = ["127.0.0.1:${var.container_port}"]
                labels = {
                  ClusterName = local.cluster_name
                  ServiceName = local.service_name[c]
                  color       = c
                }
              }]
            }]
          }
        }
      }
      processors = {
        resourcedetection = { detectors = ["env", "ecs"], timeout = "5s", override = false }
        batch             = { timeout = "30s" }
      }
      exporters = {
        awsemf = {
          namespace               = var.metrics_namespace
          region                  = local.region
          log_group_name          = aws_cloudwatch_log_group.metrics.name
          log_stream_name         = "{TaskId}"
          dimension_rollup_option = "NoDimensionRollup"
          metric_declarations = [{
            dimensions            = [["ClusterName", "ServiceName"]]
            metric_name_selectors = ["^websocket_connections_total$$"]
          }]
        }
        prometheusremotewrite = {
          endpoint                         = var.prometheus_remote_write_url
          auth                             = { authenticator = "sigv4auth" }
          resource_to_telemetry_conversion = { enabled = true }
        }
      }
      service = {
        extensions = ["sigv4auth"]
        pipelines = {
          "metrics/cloudwatch" = {
            receivers  = ["prometheus"]
            processors = ["resourcedetection", "batch"]
            exporters  = ["awsemf"]
          }
          "metrics/prometheus" = {
            receivers  = ["prometheus"]
            processors = ["resourcedetection", "batch"]
            exporters  = ["prometheusremotewrite"]
          }
        }
      }
    })
  }
}

# =============================================================================================
# Image repository
# =============================================================================================

resource "aws_ecr_repository" "gateway" {
  name                 = "${var.name}/gateway"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.data_kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "gateway" {
  repository = aws_ecr_repository.gateway.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest ${var.ecr_images_to_keep} images (enough to roll back several releases)"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.ecr_images_to_keep
      }
      action = { type = "expire" }
    }]
  })
}

# =============================================================================================
# ECS cluster, logs, task definitions
# =============================================================================================

resource "aws_ecs_cluster" "this" {
  name = local.cluster_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "gateway" {
  name              = "/ecs/${var.name}/gateway"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_cloudwatch_log_group" "adot" {
  name              = "/ecs/${var.name}/adot-collector"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_cloudwatch_log_group" "metrics" {
  name              = "/ecs/${var.name}/metrics"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_ecs_task_definition" "gateway" {
  for_each = local.colors

  family                   = "${var.name}-gateway-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = var.task_execution_role_arn
  task_role_arn            = var.task_role_arn

  # Keep old revisions registered: rolling back is pointing the service at the previous one.
  skip_destroy = true

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Writable scratch space; the root filesystem is read-only.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name              = local.container_name
      image             = local.gateway_image
      essential         = true
      cpu               = var.task_cpu - var.adot_cpu
      memoryReservation = var.task_memory - var.adot_memory
      portMappings = [{
        name          = "http"
        containerPort = var.container_port
        protocol      = "tcp"
        appProtocol   = "http"
      }]
      environment = [
        { name = "COLLABGATE_JWT_JWKS_URL", value = var.jwt_jwks_url },
        { name = "COLLABGATE_JWT_ISSUER", value = var.jwt_issuer },
        { name = "COLLABGATE_JWT_AUDIENCE", value = var.jwt_audience },
      ]
      secrets = [
        { name = "COLLABGATE_DATABASE_URL", valueFrom = "${var.gateway_secret_arns["database"]}:url::" },
        { name = "COLLABGATE_REDIS_URL", valueFrom = "${var.gateway_secret_arns["redis"]}:url::" },
        { name = "COLLABGATE_AMQP_URL", valueFrom = "${var.gateway_secret_arns["amqp"]}:url::" },
      ]
      healthCheck = {
        command     = ["CMD", "python", "-c", local.health_check_command]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      # On SIGTERM the gateway sends SERVER_SHUTDOWN and closes sockets with 1012; give it the
      # Fargate maximum before SIGKILL.
      stopTimeout            = var.stop_timeout_seconds
      readonlyRootFilesystem = true
      privileged             = false
      linuxParameters = {
        initProcessEnabled = true
      }
      ulimits = [{
        name      = "nofile"
        softLimit = 65536
        hardLimit = 65536
      }]
      mountPoints = [{
        sourceVolume  = "tmp"
        containerPath = "/tmp"
        readOnly      = false
      }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.gateway.name
          awslogs-region        = local.region
          awslogs-stream-prefix = each.key
          mode                  = "non-blocking"
          max-buffer-size       = "25m"
        }
      }
    },
    {
      name                   = "adot-collector"
      image                  = var.adot_image
      essential              = false
      cpu                    = var.adot_cpu
      memoryReservation      = var.adot_memory
      readonlyRootFilesystem = true
      privileged             = false
      environment = [
        { name = "AOT_CONFIG_CONTENT", value = local.adot_config[each.key] },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.adot.name
          awslogs-region        = local.region
          awslogs-stream-prefix = each.key
        }
      }
    },
  ])
}

# =============================================================================================
# Load balancer
# =============================================================================================

resource "aws_lb" "this" {
  name                       = "${var.name}-alb"
  internal                   = false
  load_balancer_type         = "application"
  security_groups            = [var.alb_security_group_id]
  subnets                    = var.public_subnet_ids
  idle_timeout               = var.alb_idle_timeout_seconds
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  enable_http2               = true
  desync_mitigation_mode     = "defensive"

  access_logs {
    bucket  = var.access_logs_bucket
    prefix  = "alb"
    enabled = true
  }
}

resource "aws_lb_target_group" "gateway" {
  for_each = local.colors

  name                 = "${var.name}-gw-${each.key}"
  port                 = var.container_port
  protocol             = "HTTP"
  protocol_version     = "HTTP1"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = var.deregistration_delay_seconds

  health_check {
    enabled             = true
    path                = var.target_health_check_path
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  # A WebSocket stays on its target for its whole life anyway; the cookie brings a reconnecting
  # client (and the HTTP calls around it) back to the task that already holds its rooms.
  stickiness {
    type            = "lb_cookie"
    enabled         = true
    cookie_duration = var.stickiness_duration_seconds
  }

  tags = {
    Color = each.key
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.acm_certificate_arn

  default_action {
    type = "forward"

    forward {
      target_group {
        arn    = aws_lb_target_group.gateway["blue"].arn
        weight = local.initial_weights["blue"]
      }

      target_group {
        arn    = aws_lb_target_group.gateway["green"].arn
        weight = local.initial_weights["green"]
      }
    }
  }

  # The deploy role may modify only listeners and rules carrying this tag.
  tags = {
    "collabgate:traffic-shift" = "true"
  }

  # The deploy controller shifts the weights; Terraform must not shift them back.
  lifecycle {
    ignore_changes = [default_action[0].forward[0].target_group]
  }
}

resource "aws_lb_listener" "http_redirect" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

# Smoke tests reach one colour directly (header X-Collabgate-Color: blue|green), before any
# weight moves; restricted to var.smoke_test_cidrs when given.
resource "aws_lb_listener_rule" "smoke_test" {
  for_each = local.colors

  listener_arn = aws_lb_listener.https.arn
  priority     = each.key == "blue" ? 10 : 20

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway[each.key].arn
  }

  condition {
    http_header {
      http_header_name = "X-Collabgate-Color"
      values           = [each.key]
    }
  }

  dynamic "condition" {
    for_each = length(var.smoke_test_cidrs) > 0 ? [1] : []

    content {
      source_ip {
        values = var.smoke_test_cidrs
      }
    }
  }

  tags = {
    "collabgate:traffic-shift" = "true"
  }
}

# =============================================================================================
# AWS WAF in front of the ALB
# =============================================================================================

resource "aws_wafv2_web_acl" "this" {
  name        = "${var.name}-alb"
  description = "collabgate ALB: AWS managed rules and a per-IP rate limit"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 1

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit_per_5_minutes
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-limit"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-ip-reputation"
    priority = 10

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesAmazonIpReputationList"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  # Anonymising services (Tor, VPN exits) are blocked; hosting-provider addresses are only
  # counted, since hospital staff may reach the gateway from cloud-hosted virtual desktops.
  rule {
    name     = "aws-anonymous-ip"
    priority = 15

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesAnonymousIpList"
        vendor_name = "AWS"

        rule_action_override {
          name = "HostingProviderIPList"

          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-anonymous-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-common"
    priority = 20

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesCommonRuleSet"
        vendor_name = "AWS"

        # Signed webhook pushes from EMR/PACS/HL7 feeds may exceed the 8 KB body limit of
        # this group; they are authenticated by HMAC and size-limited by the gateway itself.
        rule_action_override {
          name = "SizeRestrictions_BODY"

          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-common"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 30

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name}-alb"
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "alb" {
  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

resource "aws_cloudwatch_log_group" "waf" {
  # WAF requires the "aws-waf-logs-" prefix.
  name              = "aws-waf-logs-${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [aws_cloudwatch_log_group.waf.arn]

  # Browsers cannot set headers on a WebSocket upgrade, so the access token may travel in the
  # query string: never log it, nor cookies or Authorization.
  redacted_fields {
    query_string {}
  }

  redacted_fields {
    single_header {
      name = "authorization"
    }
  }

  redacted_fields {
    single_header {
      name = "cookie"
    }
  }
}

# =============================================================================================
# Services (blue and green) and autoscaling
# =============================================================================================

resource "aws_ecs_service" "gateway" {
  for_each = local.colors

  name                              = local.service_name[each.key]
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.gateway[each.key].arn
  desired_count                     = var.desired_count
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  scheduling_strategy               = "REPLICA"
  health_check_grace_period_seconds = 60
  enable_execute_command            = false
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"
  wait_for_steady_state             = false

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_controller {
    type = "ECS"
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.gateway_security_group_id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway[each.key].arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  # The deploy controller registers new task definition revisions and the autoscaler moves the
  # desired count; Terraform sets only their initial values.
  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }

  tags = {
    Color = each.key
  }

  depends_on = [aws_lb_listener.https]
}

resource "aws_appautoscaling_target" "gateway" {
  for_each = local.colors

  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.gateway[each.key].name}"
  min_capacity       = var.autoscaling_min_capacity
  max_capacity       = var.autoscaling_max_capacity
}

resource "aws_appautoscaling_policy" "cpu" {
  for_each = local.colors

  name               = "${local.service_name[each.key]}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway[each.key].service_namespace
  scalable_dimension = aws_appautoscaling_target.gateway[each.key].scalable_dimension
  resource_id        = aws_appautoscaling_target.gateway[each.key].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Connections per task: every task's ADOT sidecar publishes its own websocket_connections_total
# gauge under the service's dimensions, so the Average statistic over a period is the mean
# number of open WebSockets per task - exactly the quantity to hold at the target.
resource "aws_appautoscaling_policy" "connections" {
  for_each = local.colors

  name               = "${local.service_name[each.key]}-connections-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway[each.key].service_namespace
  scalable_dimension = aws_appautoscaling_target.gateway[each.key].scalable_dimension
  resource_id        = aws_appautoscaling_target.gateway[each.key].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.connections_per_task_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 600

    customized_metric_specification {
      metric_name = "websocket_connections_total"
      namespace   = var.metrics_namespace
      statistic   = "Average"

      dimensions {
        name  = "ClusterName"
        value = aws_ecs_cluster.this.name
      }

      dimensions {
        name  = "ServiceName"
        value = aws_ecs_service.gateway[each.key].name
      }
    }
  }
}

# =============================================================================================
# Alarms on the load balancer and its targets
# =============================================================================================

resource "aws_cloudwatch_metric_alarm" "alb_5xx" {
  alarm_name          = "${var.name}-alb-5xx"
  alarm_description   = "The ALB itself answered 5xx (no healthy target, timeouts)"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_ELB_5XX_Count"
  dimensions          = { LoadBalancer = aws_lb.this.arn_suffix }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.alb_5xx_threshold_per_minute
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [var.critical_alert_topic_arn]
  ok_actions          = [var.critical_alert_topic_arn]
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_targets" {
  for_each = aws_lb_target_group.gateway

  alarm_name          = "${var.name}-${each.key}-unhealthy-targets"
  alarm_description   = "Gateway tasks of the ${each.key} colour failing the ALB readiness check"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = { LoadBalancer = aws_lb.this.arn_suffix, TargetGroup = each.value.arn_suffix }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [var.warning_alert_topic_arn]
  ok_actions          = [var.warning_alert_topic_arn]
}
