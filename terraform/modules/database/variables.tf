variable "name" {
  type        = string
  description = "Name prefix for every resource of this module, e.g. \"collabgate-prod\"."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the DB subnet group (at least two AZs)."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the RDS instances (from the security module)."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting storage, Performance Insights and the backup vault."
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the instances' exported PostgreSQL logs."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the exported PostgreSQL logs, in days."
  default     = 365
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the RDS-managed master user secret."
}

variable "engine_version" {
  type        = string
  description = "PostgreSQL engine version; a major version (\"15\") lets RDS apply minor upgrades without Terraform drift."
  default     = "15"

  validation {
    condition     = can(regex("^15(\\.[0-9]+)?$", var.engine_version))
    error_message = "engine_version must be PostgreSQL 15.x."
  }
}

variable "instance_class" {
  type        = string
  description = "Instance class of the primary."
  default     = "db.t3.medium"
}

variable "replica_instance_class" {
  type        = string
  description = "Instance class of the read replica; null uses instance_class."
  default     = null
}

variable "allocated_storage_gb" {
  type        = number
  description = "Allocated gp3 storage, in GB."
  default     = 100
}

variable "max_allocated_storage_gb" {
  type        = number
  description = "Upper limit of storage autoscaling, in GB."
  default     = 500
}

variable "multi_az" {
  type        = bool
  description = "Whether the primary runs with a synchronous standby in another AZ."
  default     = true
}

variable "create_read_replica" {
  type        = bool
  description = "Whether to create a read replica of the primary."
  default     = true
}

variable "database_name" {
  type        = string
  description = "Name of the database created on the instance."
  default     = "collabgate"
}

variable "master_username" {
  type        = string
  description = "Master user name; its password is generated, stored and rotated by RDS in Secrets Manager."
  default     = "collabgate_admin"
}

variable "backup_retention_days" {
  type        = number
  description = "Retention of RDS automated backups (point-in-time recovery), in days."
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 1 and 35."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Whether the instances are protected against deletion."
  default     = true
}

variable "backup_schedule" {
  type        = string
  description = "AWS Backup schedule (cron, UTC) of the daily snapshot."
  default     = "cron(0 5 * * ? *)"
}

variable "snapshot_retention_days" {
  type        = number
  description = "Days the AWS Backup daily snapshots (and their cross-region copies) are kept."
  default     = 30
}

variable "backup_copy_destination_vault_arn" {
  type        = string
  description = "ARN of an AWS Backup vault in another region that receives a copy of every daily snapshot; null disables the copy."
  default     = null
}

variable "app_secret_arn" {
  type        = string
  description = "ARN of the Secrets Manager secret (from the security module) that receives the gateway's application credentials and COLLABGATE_DATABASE_URL."
}

variable "app_username" {
  type        = string
  description = "PostgreSQL role the gateway logs in as (not the master user)."
  default     = "collabgate_app"
}
