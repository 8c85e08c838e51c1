variable "name" {
  type        = string
  description = "Name prefix for every resource of this module, e.g. \"collabgate-prod\"."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets: one AZ per cluster node (CLUSTER_MULTI_AZ) or the first one only (SINGLE_INSTANCE)."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the broker (from the security module)."
}

variable "engine_version" {
  type        = string
  description = "RabbitMQ engine version on Amazon MQ (3.13 and later require automatic minor version upgrades)."
  default     = "3.13"
}

variable "instance_type" {
  type        = string
  description = "Broker instance type (mq.m5.large or larger for the cluster deployment; mq.t3.micro only for SINGLE_INSTANCE)."
  default     = "mq.m5.large"
}

variable "deployment_mode" {
  type        = string
  description = "CLUSTER_MULTI_AZ (3 nodes across AZs) or SINGLE_INSTANCE (dev)."
  default     = "CLUSTER_MULTI_AZ"

  validation {
    condition     = contains(["CLUSTER_MULTI_AZ", "SINGLE_INSTANCE"], var.deployment_mode)
    error_message = "deployment_mode must be CLUSTER_MULTI_AZ or SINGLE_INSTANCE for RabbitMQ."
  }
}

variable "username" {
  type        = string
  description = "RabbitMQ user of the gateway."
  default     = "collabgate"
}

variable "credentials_secret_arn" {
  type        = string
  description = "ARN of the Secrets Manager secret (from the security module) that receives the RabbitMQ credentials and COLLABGATE_AMQP_URL."
}
