output "data_kms_key_arn" {
  description = "ARN of the KMS key for data at rest (RDS, ElastiCache, AWS Backup, ECR)."
  value       = aws_kms_key.data.arn
}

output "secrets_kms_key_arn" {
  description = "ARN of the KMS key encrypting Secrets Manager secrets."
  value       = aws_kms_key.secrets.arn
}

output "logs_kms_key_arn" {
  description = "ARN of the KMS key for CloudWatch Logs, CloudTrail, SNS and Managed Prometheus."
  value       = aws_kms_key.logs.arn
}

output "gateway_secret_arns" {
  description = "ARNs of the gateway's secrets by name (database, redis, amqp); the data-tier modules write their first value."
  value       = { for k, s in aws_secretsmanager_secret.gateway : k => s.arn }
}

output "alb_security_group_id" {
  description = "Security group of the application load balancer."
  value       = aws_security_group.alb.id
}

output "gateway_security_group_id" {
  description = "Security group of the gateway tasks."
  value       = aws_security_group.gateway.id
}

output "database_security_group_id" {
  description = "Security group of the RDS instances."
  value       = aws_security_group.database.id
}

output "cache_security_group_id" {
  description = "Security group of the ElastiCache replication group."
  value       = aws_security_group.cache.id
}

output "mq_security_group_id" {
  description = "Security group of the Amazon MQ broker."
  value       = aws_security_group.mq.id
}

output "task_execution_role_arn" {
  description = "ARN of the ECS task execution role of the gateway."
  value       = aws_iam_role.task_execution.arn
}

output "task_role_arn" {
  description = "ARN of the ECS task role of the gateway."
  value       = aws_iam_role.task.arn
}

output "deploy_role_arn" {
  description = "ARN of the role the blue/green deploy pipeline assumes (GitHub Actions OIDC)."
  value       = aws_iam_role.deploy.arn
}

output "logs_bucket_id" {
  description = "Name of the S3 bucket receiving S3 server access logs and ALB access logs (prefix alb/); available once its bucket policy is in place, so the ALB can enable access logs."
  value       = aws_s3_bucket_policy.logs.bucket
}

output "cloudtrail_arn" {
  description = "ARN of the CloudTrail trail."
  value       = aws_cloudtrail.this.arn
}

output "cloudtrail_bucket_id" {
  description = "Name of the S3 bucket holding the CloudTrail log files."
  value       = aws_s3_bucket.cloudtrail.id
}
