variable "name" {
  type        = string
  description = "Name prefix for every resource of this module, e.g. \"collabgate-prod\" (at most 22 characters: ALB and target group names are limited to 32)."

  validation {
    condition     = length(var.name) <= 22
    error_message = "name must be at most 22 characters long."
  }
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC."
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "Public subnets for the load balancer (at least two AZs)."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Private subnets for the gateway tasks."
}

variable "alb_security_group_id" {
  type        = string
  description = "Security group of the load balancer (from the security module)."
}

variable "gateway_security_group_id" {
  type        = string
  description = "Security group of the gateway tasks (from the security module)."
}

variable "task_execution_role_arn" {
  type        = string
  description = "ARN of the ECS task execution role (from the security module)."
}

variable "task_role_arn" {
  type        = string
  description = "ARN of the ECS task role (from the security module)."
}

variable "gateway_secret_arns" {
  type        = map(string)
  description = "Secrets Manager ARNs with keys database, redis and amqp; each secret's \"url\" key becomes COLLABGATE_DATABASE_URL, COLLABGATE_REDIS_URL and COLLABGATE_AMQP_URL."

  validation {
    condition     = alltrue([for k in ["database", "redis", "amqp"] : contains(keys(var.gateway_secret_arns), k)])
    error_message = "gateway_secret_arns must have the keys database, redis and amqp."
  }
}

variable "data_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the ECR repository."
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the CloudWatch log groups."
}

variable "access_logs_bucket" {
  type        = string
  description = "Name of the S3 bucket receiving ALB access logs (prefix alb/)."
}

variable "acm_certificate_arn" {
  type        = string
  description = "ARN of the ACM certificate served by the HTTPS listener (the gateway's public host name)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.acm_certificate_arn))
    error_message = "acm_certificate_arn must be the ARN of an ACM certificate."
  }
}

variable "ssl_policy" {
  type        = string
  description = "TLS policy of the HTTPS listener (TLS 1.2 and 1.3 only)."
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "image_tag" {
  type        = string
  description = "Tag of the gateway image in the ECR repository for the first task definition revision; later revisions are registered by the deploy controller."
}

variable "container_port" {
  type        = number
  description = "Port the gateway listens on inside the container."
  default     = 8080
}

variable "cpu_architecture" {
  type        = string
  description = "CPU architecture of the Fargate tasks: X86_64 or ARM64 (Graviton, about 20% cheaper; the image must be built for it)."
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "task_cpu" {
  type        = number
  description = "Task CPU units (1024 = 1 vCPU), shared by the gateway and the ADOT sidecar."
  default     = 1024
}

variable "task_memory" {
  type        = number
  description = "Task memory in MiB, shared by the gateway and the ADOT sidecar."
  default     = 2048
}

variable "adot_cpu" {
  type        = number
  description = "CPU units reserved for the ADOT collector sidecar out of task_cpu."
  default     = 128
}

variable "adot_memory" {
  type        = number
  description = "Memory in MiB reserved for the ADOT collector sidecar out of task_memory."
  default     = 256
}

variable "adot_image" {
  type        = string
  description = "AWS Distro for OpenTelemetry collector image (pinned tag; check for a newer release when upgrading)."
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.42.0"
}

variable "desired_count" {
  type        = number
  description = "Initial number of tasks of each colour (blue and green); autoscaling owns it afterwards."
  default     = 3
}

variable "autoscaling_min_capacity" {
  type        = number
  description = "Minimum number of tasks per colour."
  default     = 3
}

variable "autoscaling_max_capacity" {
  type        = number
  description = "Maximum number of tasks per colour."
  default     = 10

  validation {
    condition     = var.autoscaling_max_capacity >= 1
    error_message = "autoscaling_max_capacity must be at least 1."
  }
}

variable "cpu_target_percent" {
  type        = number
  description = "Target average CPU utilisation of a service, in percent."
  default     = 60
}

variable "connections_per_task_target" {
  type        = number
  description = "Target average number of open WebSocket connections per task (websocket_connections_total)."
  default     = 1000
}

variable "metrics_namespace" {
  type        = string
  description = "CloudWatch namespace of the gateway's custom metrics."
  default     = "Collabgate/Gateway"
}

variable "prometheus_remote_write_url" {
  type        = string
  description = "Remote-write URL of the Amazon Managed Prometheus workspace."
}

variable "container_health_check_path" {
  type        = string
  description = "Liveness endpoint probed by the container health check."
  default     = "/health"
}

variable "target_health_check_path" {
  type        = string
  description = "Endpoint probed by the ALB target group health check: readiness, so a task gets traffic only once its dependencies answer."
  default     = "/ready"
}

variable "alb_idle_timeout_seconds" {
  type        = number
  description = "ALB idle timeout, in seconds: how long a WebSocket may stay silent before the ALB closes it (clients heartbeat every 30 s; background tabs throttle timers to once a minute)."
  default     = 3600

  validation {
    condition     = var.alb_idle_timeout_seconds >= 60 && var.alb_idle_timeout_seconds <= 4000
    error_message = "alb_idle_timeout_seconds must be between 60 and 4000."
  }
}

variable "deregistration_delay_seconds" {
  type        = number
  description = "Time the ALB keeps a deregistering target's connections open, in seconds; must cover the gateway's drain (SERVER_SHUTDOWN, close 1012)."
  default     = 120
}

variable "stop_timeout_seconds" {
  type        = number
  description = "Seconds between SIGTERM and SIGKILL for the gateway container (Fargate maximum 120)."
  default     = 120

  validation {
    condition     = var.stop_timeout_seconds >= 30 && var.stop_timeout_seconds <= 120
    error_message = "stop_timeout_seconds must be between 30 and 120 on Fargate."
  }
}

variable "stickiness_duration_seconds" {
  type        = number
  description = "Duration of the ALB stickiness cookie within a colour's target group, in seconds."
  default     = 3600
}

variable "smoke_test_cidrs" {
  type        = list(string)
  description = "Source CIDRs allowed to reach one colour directly with the X-Collabgate-Color header (CI runners, VPN); empty means no source restriction."
  default     = []
}

variable "waf_rate_limit_per_5_minutes" {
  type        = number
  description = "Requests per client IP per 5 minutes above which WAF blocks (hospital networks put many users behind one NAT address)."
  default     = 10000
}

variable "alb_deletion_protection" {
  type        = bool
  description = "Whether the ALB is protected against deletion."
  default     = true
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the container, metric and WAF log groups, in days."
  default     = 365
}

variable "ecr_images_to_keep" {
  type        = number
  description = "Number of most recent images kept in the ECR repository."
  default     = 50
}

variable "jwt_jwks_url" {
  type        = string
  description = "COLLABGATE_JWT_JWKS_URL: JWKS endpoint of the identity provider."
}

variable "jwt_issuer" {
  type        = string
  description = "COLLABGATE_JWT_ISSUER: expected iss claim of access tokens."
}

variable "jwt_audience" {
  type        = string
  description = "COLLABGATE_JWT_AUDIENCE: expected aud claim of access tokens."
}

variable "critical_alert_topic_arn" {
  type        = string
  description = "SNS topic for alarms that page: ALB-generated 5xx (from the monitoring module)."
}

variable "warning_alert_topic_arn" {
  type        = string
  description = "SNS topic for warnings: unhealthy targets (from the monitoring module)."
}

variable "alb_5xx_threshold_per_minute" {
  type        = number
  description = "ALB-generated 5xx responses per minute (3 minutes in a row) that raise the alarm."
  default     = 10
}
