variable "environment" {
  type        = string
  description = "Environment whose state this stack holds: dev, staging or prod."

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "region" {
  type        = string
  description = "AWS region of the state bucket and lock table (as in the environment's backend.tf)."
  default     = "us-east-1"
}

variable "state_bucket_name" {
  type        = string
  description = "Name of the state bucket; null gives collabgate-<environment>-terraform-state (bucket names are global: override if taken, and in backend.tf too)."
  default     = null
}

variable "lock_table_name" {
  type        = string
  description = "Name of the DynamoDB lock table; null gives collabgate-<environment>-terraform-locks."
  default     = null
}

variable "noncurrent_state_retention_days" {
  type        = number
  description = "Days superseded state revisions are kept (for recovering from a bad apply)."
  default     = 365
}

variable "create_github_oidc_provider" {
  type        = bool
  description = "Whether to create the account's GitHub Actions OIDC provider (false if the account already has one)."
  default     = true
}
