variable "name" {
  type        = string
  description = "Name prefix for every resource of this module, e.g. \"collabgate-prod\" (the replication group id is limited to 40 characters)."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets of the cache subnet group."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the replication group (from the security module)."
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting data at rest (and snapshots)."
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the slow-log and engine-log log groups."
}

variable "auth_secret_arn" {
  type        = string
  description = "ARN of the Secrets Manager secret (from the security module) that receives the AUTH token and COLLABGATE_REDIS_URL."
}

variable "engine_version" {
  type        = string
  description = "Redis OSS engine version."
  default     = "7.1"
}

variable "parameter_group_name" {
  type        = string
  description = "ElastiCache parameter group."
  default     = "default.redis7"
}

variable "node_type" {
  type        = string
  description = "Node type of the primary and of each replica."
  default     = "cache.t4g.medium"
}

variable "replica_count" {
  type        = number
  description = "Number of read replicas besides the primary (1 = primary + replica, with automatic failover)."
  default     = 1

  validation {
    condition     = var.replica_count >= 0 && var.replica_count <= 5
    error_message = "replica_count must be between 0 and 5."
  }
}

variable "multi_az" {
  type        = bool
  description = "Automatic failover to a replica in another AZ (requires replica_count >= 1)."
  default     = true
}

variable "port" {
  type        = number
  description = "Redis port."
  default     = 6379
}

variable "snapshot_retention_days" {
  type        = number
  description = "Days of automatic daily snapshots kept (Redis holds only reconstructible state: sessions, presence, locks)."
  default     = 7
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the Redis slow-log and engine-log log groups, in days."
  default     = 365
}
