output "state_bucket_name" {
  description = "Name of the state bucket (backend \"s3\" bucket)."
  value       = aws_s3_bucket.state.id
}

output "lock_table_name" {
  description = "Name of the lock table (backend \"s3\" dynamodb_table)."
  value       = aws_dynamodb_table.locks.name
}

output "state_kms_key_arn" {
  description = "ARN of the KMS key of the state (backend \"s3\" kms_key_id)."
  value       = aws_kms_key.state.arn
}

output "github_oidc_provider_arn" {
  description = "ARN of the GitHub Actions OIDC provider (null when not created here)."
  value       = try(aws_iam_openid_connect_provider.github[0].arn, null)
}
