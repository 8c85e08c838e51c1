output "prometheus_workspace_id" {
  description = "ID of the Amazon Managed Prometheus workspace."
  value       = aws_prometheus_workspace.this.id
}

output "prometheus_workspace_arn" {
  description = "ARN of the Amazon Managed Prometheus workspace."
  value       = aws_prometheus_workspace.this.arn
}

output "prometheus_endpoint" {
  description = "Prometheus-compatible query endpoint of the workspace."
  value       = aws_prometheus_workspace.this.prometheus_endpoint
}

output "prometheus_remote_write_url" {
  description = "Remote-write URL of the workspace (used by the ADOT sidecars)."
  value       = "${aws_prometheus_workspace.this.prometheus_endpoint}api/v1/remote_write"
}

output "grafana_endpoint" {
  description = "URL of the Managed Grafana workspace."
  value       = "https://${aws_grafana_workspace.this.endpoint}"
}

output "alert_topic_arns" {
  description = "ARNs of the SNS alert topics by severity (critical, warning); subscribe chat/paging integrations here."
  value       = { for s, t in aws_sns_topic.alerts : s => t.arn }
}
