variable "name" {
  type        = string
  description = "Name prefix for every resource of this module, e.g. \"collabgate-prod\"."
}

variable "vpc_id" {
  type        = string
  description = "ID of the VPC the security groups belong to."
}

variable "gateway_port" {
  type        = number
  description = "Port the gateway container listens on (HTTP, WebSocket, /health, /ready, /metrics)."
  default     = 8080
}

variable "database_port" {
  type        = number
  description = "PostgreSQL port."
  default     = 5432
}

variable "redis_port" {
  type        = number
  description = "Redis port (TLS)."
  default     = 6379
}

variable "amqp_port" {
  type        = number
  description = "AMQP over TLS port of the Amazon MQ broker."
  default     = 5671
}

variable "additional_database_client_security_group_ids" {
  type        = list(string)
  description = "Security groups besides the gateway's that may reach PostgreSQL (e.g. the secret rotation function, a migration runner)."
  default     = []
}

variable "kms_deletion_window_days" {
  type        = number
  description = "Waiting period, in days, before a deleted KMS key is destroyed (7-30)."
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# --- secrets ---------------------------------------------------------------------------------

variable "rotation_lambda_arn" {
  type        = string
  description = "ARN of the Lambda function implementing the Secrets Manager rotation protocol for the gateway's secrets (see \"Secret rotation\" in terraform/README.md)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]+$", var.rotation_lambda_arn))
    error_message = "rotation_lambda_arn must be the ARN of a Lambda function."
  }
}

variable "secret_rotation_days" {
  type        = number
  description = "Rotation interval of the gateway's secrets, in days (DEVOPS-001.6: 30)."
  default     = 30

  validation {
    condition     = var.secret_rotation_days >= 1 && var.secret_rotation_days <= 30
    error_message = "secret_rotation_days must be between 1 and 30."
  }
}

variable "secret_recovery_window_days" {
  type        = number
  description = "Days a deleted secret can still be restored (0 deletes at once; 7-30 otherwise)."
  default     = 30
}

# --- IAM -------------------------------------------------------------------------------------

variable "github_repository" {
  type        = string
  description = "GitHub repository (owner/name) whose Actions workflow may assume the deploy role through OIDC."

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_environment" {
  type        = string
  description = "GitHub Actions environment (protected, with required reviewers for prod) allowed to assume the deploy role."
}

# --- CloudTrail and logs ---------------------------------------------------------------------

variable "cloudtrail_retention_days" {
  type        = number
  description = "Days CloudTrail log files are kept in S3 (HIPAA documentation retention is 6 years: 2190)."
  default     = 2190
}

variable "cloudtrail_log_group_retention_days" {
  type        = number
  description = "Retention of the CloudTrail CloudWatch log group, in days (at least 365)."
  default     = 365
}

variable "access_log_retention_days" {
  type        = number
  description = "Days S3 server access logs and ALB access logs are kept."
  default     = 365
}

variable "audited_s3_bucket_arns" {
  type        = list(string)
  description = "S3 buckets whose object reads and writes the trail records as data events (the Terraform state bucket)."
  default     = []
}
