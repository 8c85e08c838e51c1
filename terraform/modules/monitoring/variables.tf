variable "name" {
  type        = string
  description = "Name prefix for every resource of this module, e.g. \"collabgate-prod\"."
}

variable "logs_kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the SNS topics, the Prometheus workspace and its log group."
}

variable "alert_email_addresses" {
  type        = list(string)
  description = "E-mail addresses subscribed to both alert topics (each must confirm); chat and paging integrations subscribe to the topics outside Terraform."
  default     = []
}

variable "alert_rules_yaml" {
  type        = string
  description = "A Prometheus rule file (YAML) to use instead of deploy/prometheus/rules/ (null: those rules, as tested)."
  default     = null
}

variable "rule_evaluation_interval" {
  type        = string
  description = "How often Managed Prometheus evaluates each rule group; the alert rules assume 15 s (deploy/prometheus/prometheus.yml)."
  default     = "15s"
}

variable "runbook_base_url" {
  type        = string
  description = "Base URL of the runbooks linked from alert annotations (docs/runbooks/ in the repository)."
}

variable "grafana_version" {
  type        = string
  description = "Grafana version of the Managed Grafana workspace."
  default     = "10.4"
}

variable "grafana_admin_group_ids" {
  type        = list(string)
  description = "IAM Identity Center group IDs given the Grafana ADMIN role."
  default     = []
}

variable "grafana_viewer_group_ids" {
  type        = list(string)
  description = "IAM Identity Center group IDs given the Grafana VIEWER role."
  default     = []
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the Managed Prometheus log group, in days."
  default     = 365
}

variable "db_instance_identifier" {
  type        = string
  description = "Identifier of the RDS primary."
}

variable "redis_replication_group_id" {
  type        = string
  description = "ID of the ElastiCache replication group (its first node is the initial primary)."
}
