# --- for the blue/green deploy controller ----------------------------------------------------

output "deploy_role_arn" {
  description = "Role the deploy workflow assumes through GitHub OIDC."
  value       = module.security.deploy_role_arn
}

output "ecs_cluster_name" {
  description = "ECS cluster of the gateway services."
  value       = module.compute.cluster_name
}

output "ecs_service_names" {
  description = "Gateway ECS services by colour (blue, green)."
  value       = module.compute.service_names
}

output "task_definition_families" {
  description = "Task definition family by colour; register the new revision in the idle colour's family."
  value       = module.compute.task_definition_families
}

output "container_name" {
  description = "Name of the gateway container inside the task definitions (the one whose image changes)."
  value       = module.compute.container_name
}

output "https_listener_arn" {
  description = "HTTPS listener whose default action's blue/green weights the controller shifts."
  value       = module.compute.https_listener_arn
}

output "target_group_arns" {
  description = "Target groups by colour."
  value       = module.compute.target_group_arns
}

output "listener_rule_arns" {
  description = "Smoke-test listener rules by colour (header X-Collabgate-Color)."
  value       = module.compute.listener_rule_arns
}

output "ecr_repository_url" {
  description = "Repository the build pushes gateway images to."
  value       = module.compute.ecr_repository_url
}

output "alb_dns_name" {
  description = "DNS name of the load balancer (alias target of the public host name)."
  value       = module.compute.alb_dns_name
}

output "alb_zone_id" {
  description = "Hosted zone ID of the load balancer (for a Route 53 alias record)."
  value       = module.compute.alb_zone_id
}

# --- for the gateway's configuration ---------------------------------------------------------

output "gateway_secret_arns" {
  description = "Secrets whose \"url\" key ECS injects as COLLABGATE_DATABASE_URL, COLLABGATE_REDIS_URL and COLLABGATE_AMQP_URL."
  value       = module.security.gateway_secret_arns
}

output "database_primary_address" {
  description = "PostgreSQL primary host name."
  value       = module.database.primary_address
}

output "database_replica_address" {
  description = "PostgreSQL read replica host name (null without a replica)."
  value       = module.database.replica_address
}

output "database_master_secret_arn" {
  description = "RDS-managed master credentials (DBA use only: creating the application role)."
  value       = module.database.master_user_secret_arn
}

output "redis_primary_endpoint" {
  description = "ElastiCache primary endpoint (TLS, AUTH)."
  value       = module.cache.primary_endpoint_address
}

output "amqps_endpoint" {
  description = "Amazon MQ AMQPS endpoint."
  value       = module.messaging.amqps_endpoint
}

output "metrics_namespace" {
  description = "CloudWatch namespace of websocket_connections_total (connections-per-task autoscaling)."
  value       = module.compute.metrics_namespace
}

# --- for operators ---------------------------------------------------------------------------

output "prometheus_endpoint" {
  description = "Amazon Managed Prometheus query endpoint."
  value       = module.monitoring.prometheus_endpoint
}

output "grafana_endpoint" {
  description = "Amazon Managed Grafana URL."
  value       = module.monitoring.grafana_endpoint
}

output "alert_topic_arns" {
  description = "SNS alert topics by severity."
  value       = module.monitoring.alert_topic_arns
}

output "backup_vault_arn" {
  description = "AWS Backup vault with the daily database snapshots."
  value       = module.database.backup_vault_arn
}

output "nat_public_ips" {
  description = "Egress IP addresses of the environment."
  value       = module.networking.nat_public_ips
}
