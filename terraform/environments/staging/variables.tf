# --- environment -----------------------------------------------------------------------------

variable "environment" {
  type        = string
  description = "Environment name: dev, staging or prod (also the Environment tag and the GitHub Actions environment of the deploy role)."

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  type        = string
  description = "AWS region of the environment."
  default     = "us-east-1"
}

variable "state_bucket_name" {
  type        = string
  description = "Name of the Terraform state bucket (as in backend.tf); its object reads and writes are recorded by CloudTrail."
}

variable "deletion_protection" {
  type        = bool
  description = "Deletion protection of the ALB and the RDS instances."
  default     = true
}

# --- networking ------------------------------------------------------------------------------

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones of the subnets, in order."
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC."
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "Public subnet CIDRs, one per availability zone."
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "Private subnet CIDRs, one per availability zone."
}

variable "nat_gateway_count" {
  type        = number
  description = "Number of NAT gateways (one per AZ in prod)."
}

# --- edge and identity -----------------------------------------------------------------------

variable "acm_certificate_arn" {
  type        = string
  description = "ARN of the ACM certificate of the gateway's public host name (validated in ACM beforehand)."
}

variable "smoke_test_cidrs" {
  type        = list(string)
  description = "Source CIDRs allowed to address one colour directly (X-Collabgate-Color header); empty for no source restriction."
  default     = []
}

variable "jwt_jwks_url" {
  type        = string
  description = "JWKS URL of the identity provider (COLLABGATE_JWT_JWKS_URL)."
}

variable "jwt_issuer" {
  type        = string
  description = "Expected token issuer (COLLABGATE_JWT_ISSUER)."
}

variable "jwt_audience" {
  type        = string
  description = "Expected token audience (COLLABGATE_JWT_AUDIENCE)."
}

variable "github_repository" {
  type        = string
  description = "GitHub repository (owner/name) whose deploy workflow assumes the deploy role."
}

# --- gateway (ECS Fargate) -------------------------------------------------------------------

variable "gateway_image_tag" {
  type        = string
  description = "Image tag of the first task definition revision (later ones come from the deploy controller)."
}

variable "gateway_cpu_architecture" {
  type        = string
  description = "X86_64 or ARM64."
  default     = "X86_64"
}

variable "gateway_task_cpu" {
  type        = number
  description = "Task CPU units (1024 = 1 vCPU)."
}

variable "gateway_task_memory" {
  type        = number
  description = "Task memory, MiB."
}

variable "gateway_desired_count" {
  type        = number
  description = "Initial task count per colour."
}

variable "gateway_min_capacity" {
  type        = number
  description = "Autoscaling minimum per colour."
}

variable "gateway_max_capacity" {
  type        = number
  description = "Autoscaling maximum per colour."
}

variable "gateway_connections_per_task_target" {
  type        = number
  description = "Target WebSocket connections per task for autoscaling."
}

# --- database --------------------------------------------------------------------------------

variable "db_engine_version" {
  type        = string
  description = "PostgreSQL engine version (15 or 15.x)."
}

variable "db_instance_class" {
  type        = string
  description = "RDS instance class of the primary."
}

variable "db_allocated_storage_gb" {
  type        = number
  description = "Allocated gp3 storage, GB."
}

variable "db_multi_az" {
  type        = bool
  description = "Multi-AZ primary."
}

variable "db_create_read_replica" {
  type        = bool
  description = "Whether to create a read replica."
}

variable "db_replica_instance_class" {
  type        = string
  description = "Instance class of the read replica (null: same as the primary)."
  default     = null
}

variable "db_backup_retention_days" {
  type        = number
  description = "RDS automated backup retention, days."
}

variable "backup_copy_destination_vault_arn" {
  type        = string
  description = "AWS Backup vault in another region receiving copies of the daily snapshots; null for none."
  default     = null
}

variable "additional_database_client_security_group_ids" {
  type        = list(string)
  description = "Further security groups allowed to reach PostgreSQL (rotation function, migration runner)."
  default     = []
}

# --- cache and messaging ---------------------------------------------------------------------

variable "redis_node_type" {
  type        = string
  description = "ElastiCache node type."
}

variable "redis_replica_count" {
  type        = number
  description = "Read replicas besides the primary."
}

variable "redis_multi_az" {
  type        = bool
  description = "Automatic failover to the replica in another AZ."
}

variable "mq_instance_type" {
  type        = string
  description = "Amazon MQ broker instance type."
}

variable "mq_deployment_mode" {
  type        = string
  description = "CLUSTER_MULTI_AZ or SINGLE_INSTANCE."
}

# --- secrets ---------------------------------------------------------------------------------

variable "secret_rotation_lambda_arn" {
  type        = string
  description = "ARN of the secret rotation function (see terraform/README.md, \"Secret rotation\")."
}

variable "secret_recovery_window_days" {
  type        = number
  description = "Recovery window of deleted secrets, days (0 or 7-30)."
  default     = 30
}

# --- monitoring ------------------------------------------------------------------------------

variable "alert_email_addresses" {
  type        = list(string)
  description = "E-mail addresses subscribed to the alert topics."
  default     = []
}

variable "runbook_base_url" {
  type        = string
  description = "Base URL of the runbooks linked from alerts."
}

variable "grafana_admin_group_ids" {
  type        = list(string)
  description = "IAM Identity Center groups with the Grafana ADMIN role."
  default     = []
}

variable "grafana_viewer_group_ids" {
  type        = list(string)
  description = "IAM Identity Center groups with the Grafana VIEWER role."
  default     = []
}
