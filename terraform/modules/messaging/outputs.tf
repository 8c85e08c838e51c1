output "broker_id" {
  description = "ID of the broker."
  value       = aws_mq_broker.this.id
}

output "broker_arn" {
  description = "ARN of the broker."
  value       = aws_mq_broker.this.arn
}

output "amqps_endpoint" {
  description = "AMQPS endpoint of the broker (amqps://host:5671); a single endpoint also for the cluster deployment."
  value       = local.amqps_endpoint
}

output "console_url" {
  description = "URL of the RabbitMQ management console (reachable from inside the VPC only)."
  value       = aws_mq_broker.this.instances[0].console_url
}

output "credentials_secret_arn" {
  description = "ARN of the secret holding the RabbitMQ credentials (\"url\" key: COLLABGATE_AMQP_URL); available once its first value is written."
  value       = aws_secretsmanager_secret_version.amqp.arn
}
