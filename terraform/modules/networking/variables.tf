variable "name" {
  type        = string
  description = "Name prefix for every resource of this module, e.g. \"collabgate-prod\"."
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC (production: 10.0.0.0/16)."

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "availability_zones" {
  type        = list(string)
  description = "Availability zones of the subnets, in order (e.g. [\"us-east-1a\", \"us-east-1b\", \"us-east-1c\"]); one public and one private subnet each."
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the public subnets (ALB, NAT gateways), one per availability zone, in AZ order."

  validation {
    condition     = length(var.public_subnet_cidrs) >= 2 && length(var.public_subnet_cidrs) <= 3
    error_message = "Give two or three public subnets (an ALB needs at least two AZs)."
  }
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "CIDR blocks of the private subnets (ECS tasks, RDS, ElastiCache, Amazon MQ), one per availability zone, same AZ order as the public subnets."

  validation {
    condition     = length(var.private_subnet_cidrs) >= 2 && length(var.private_subnet_cidrs) <= 3
    error_message = "Give two or three private subnets."
  }
}

variable "nat_gateway_count" {
  type        = number
  description = "Number of NAT gateways: one per AZ (= number of public subnets) for zone-independent egress in production, 1 to save cost in dev."

  validation {
    condition     = var.nat_gateway_count >= 1 && var.nat_gateway_count <= 3
    error_message = "nat_gateway_count must be between 1 and 3."
  }
}

variable "flow_logs_retention_days" {
  type        = number
  description = "Retention of the VPC flow logs in CloudWatch Logs, in days (at least 365 for audit purposes)."
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_logs_retention_days)
    error_message = "flow_logs_retention_days must be a CloudWatch Logs retention value of at least 365."
  }
}
