output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "service_names" {
  description = "Names of the gateway's ECS services by colour (blue, green)."
  value       = { for c, s in aws_ecs_service.gateway : c => s.name }
}

output "service_arns" {
  description = "ARNs of the gateway's ECS services by colour (blue, green)."
  value       = { for c, s in aws_ecs_service.gateway : c => s.id }
}

output "task_definition_families" {
  description = "Task definition family of each colour; the deploy controller registers new revisions in the idle colour's family."
  value       = { for c, t in aws_ecs_task_definition.gateway : c => t.family }
}

output "container_name" {
  description = "Name of the gateway container in the task definitions."
  value       = local.container_name
}

output "target_group_arns" {
  description = "ARNs of the blue and green target groups."
  value       = { for c, tg in aws_lb_target_group.gateway : c => tg.arn }
}

output "target_group_arn_suffixes" {
  description = "CloudWatch dimension values (TargetGroup) of the blue and green target groups."
  value       = { for c, tg in aws_lb_target_group.gateway : c => tg.arn_suffix }
}

output "https_listener_arn" {
  description = "ARN of the HTTPS listener whose weighted forward action the deploy controller shifts."
  value       = aws_lb_listener.https.arn
}

output "listener_rule_arns" {
  description = "ARNs of the per-colour smoke-test listener rules (header X-Collabgate-Color)."
  value       = { for c, r in aws_lb_listener_rule.smoke_test : c => r.arn }
}

output "alb_arn" {
  description = "ARN of the application load balancer."
  value       = aws_lb.this.arn
}

output "alb_arn_suffix" {
  description = "CloudWatch dimension value (LoadBalancer) of the ALB."
  value       = aws_lb.this.arn_suffix
}

output "alb_dns_name" {
  description = "DNS name of the ALB (target of the public host name's alias record)."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted zone ID of the ALB, for an alias record."
  value       = aws_lb.this.zone_id
}

output "ecr_repository_url" {
  description = "URL of the gateway image repository."
  value       = aws_ecr_repository.gateway.repository_url
}

output "ecr_repository_arn" {
  description = "ARN of the gateway image repository."
  value       = aws_ecr_repository.gateway.arn
}

output "container_log_group_arns" {
  description = "ARNs of the log groups the task's containers write to (gateway, ADOT collector)."
  value       = [aws_cloudwatch_log_group.gateway.arn, aws_cloudwatch_log_group.adot.arn]
}

output "gateway_log_group_name" {
  description = "Log group of the gateway container (NDJSON, no PHI)."
  value       = aws_cloudwatch_log_group.gateway.name
}

output "metrics_log_group_arn" {
  description = "ARN of the log group receiving embedded-metric-format records from the ADOT sidecar."
  value       = aws_cloudwatch_log_group.metrics.arn
}

output "metrics_namespace" {
  description = "CloudWatch namespace of the gateway's custom metrics."
  value       = var.metrics_namespace
}
