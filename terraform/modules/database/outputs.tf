output "primary_address" {
  description = "Host name of the primary (read/write)."
  value       = aws_db_instance.primary.address
}

output "primary_endpoint" {
  description = "host:port of the primary."
  value       = aws_db_instance.primary.endpoint
}

output "port" {
  description = "PostgreSQL port."
  value       = aws_db_instance.primary.port
}

output "primary_arn" {
  description = "ARN of the primary instance."
  value       = aws_db_instance.primary.arn
}

output "replica_address" {
  description = "Host name of the read replica (null when there is none)."
  value       = try(aws_db_instance.replica[0].address, null)
}

output "database_name" {
  description = "Name of the gateway's database."
  value       = aws_db_instance.primary.db_name
}

output "master_user_secret_arn" {
  description = "ARN of the RDS-managed secret holding the master credentials (for DBA tasks only)."
  value       = aws_db_instance.primary.master_user_secret[0].secret_arn
}

output "backup_vault_arn" {
  description = "ARN of the AWS Backup vault holding the daily snapshots."
  value       = aws_backup_vault.this.arn
}

output "backup_plan_id" {
  description = "ID of the AWS Backup plan."
  value       = aws_backup_plan.this.id
}

output "app_secret_arn" {
  description = "ARN of the secret holding the gateway's database credentials (\"url\" key: COLLABGATE_DATABASE_URL); available once its first value is written."
  value       = aws_secretsmanager_secret_version.app.arn
}

output "primary_identifier" {
  description = "Identifier of the primary instance (CloudWatch dimension DBInstanceIdentifier)."
  value       = aws_db_instance.primary.identifier
}
