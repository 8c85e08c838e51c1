# collabgate staging environment: composes the modules. Sizes and account-specific values are in
# terraform.tfvars; everything else is the same in dev, staging and prod.
#
# The modules form a chain without cycles:
#   networking -> security -> database, cache, messaging -> monitoring -> compute
# security owns the KMS keys, secrets, security groups and IAM roles; the data-tier modules
# write the first value of "their" secret (they know the endpoint); compute consumes the secret
# ARNs from the data-tier outputs, so no task starts before its secrets have a value.

locals {
  name = "collabgate-${var.environment}"
}

module "networking" {
  source = "../../modules/networking"

  name                 = local.name
  availability_zones   = var.availability_zones
  vpc_cidr             = var.vpc_cidr
  public_subnet_cidrs  = var.public_subnet_cidrs
  private_subnet_cidrs = var.private_subnet_cidrs
  nat_gateway_count    = var.nat_gateway_count
}

module "security" {
  source = "../../modules/security"

  name   = local.name
  vpc_id = module.networking.vpc_id

  additional_database_client_security_group_ids = var.additional_database_client_security_group_ids

  rotation_lambda_arn         = var.secret_rotation_lambda_arn
  secret_rotation_days        = 30
  secret_recovery_window_days = var.secret_recovery_window_days

  github_repository  = var.github_repository
  github_environment = var.environment

  audited_s3_bucket_arns = ["arn:aws:s3:::${var.state_bucket_name}"]
}

module "database" {
  source = "../../modules/database"

  name                = local.name
  subnet_ids          = module.networking.private_subnet_ids
  security_group_ids  = [module.security.database_security_group_id]
  kms_key_arn         = module.security.data_kms_key_arn
  logs_kms_key_arn    = module.security.logs_kms_key_arn
  secrets_kms_key_arn = module.security.secrets_kms_key_arn
  app_secret_arn      = module.security.gateway_secret_arns["database"]

  engine_version         = var.db_engine_version
  instance_class         = var.db_instance_class
  allocated_storage_gb   = var.db_allocated_storage_gb
  multi_az               = var.db_multi_az
  create_read_replica    = var.db_create_read_replica
  replica_instance_class = var.db_replica_instance_class
  backup_retention_days  = var.db_backup_retention_days
  deletion_protection    = var.deletion_protection

  snapshot_retention_days           = 30
  backup_copy_destination_vault_arn = var.backup_copy_destination_vault_arn
}

module "cache" {
  source = "../../modules/cache"

  name               = local.name
  subnet_ids         = module.networking.private_subnet_ids
  security_group_ids = [module.security.cache_security_group_id]
  kms_key_arn        = module.security.data_kms_key_arn
  logs_kms_key_arn   = module.security.logs_kms_key_arn
  auth_secret_arn    = module.security.gateway_secret_arns["redis"]

  node_type     = var.redis_node_type
  replica_count = var.redis_replica_count
  multi_az      = var.redis_multi_az
}

module "messaging" {
  source = "../../modules/messaging"

  name                   = local.name
  subnet_ids             = module.networking.private_subnet_ids
  security_group_ids     = [module.security.mq_security_group_id]
  credentials_secret_arn = module.security.gateway_secret_arns["amqp"]

  instance_type   = var.mq_instance_type
  deployment_mode = var.mq_deployment_mode
}

module "monitoring" {
  source = "../../modules/monitoring"

  name                     = local.name
  logs_kms_key_arn         = module.security.logs_kms_key_arn
  alert_email_addresses    = var.alert_email_addresses
  runbook_base_url         = var.runbook_base_url
  grafana_admin_group_ids  = var.grafana_admin_group_ids
  grafana_viewer_group_ids = var.grafana_viewer_group_ids

  db_instance_identifier     = module.database.primary_identifier
  redis_replication_group_id = module.cache.replication_group_id
}

module "compute" {
  source = "../../modules/compute"

  name               = local.name
  vpc_id             = module.networking.vpc_id
  public_subnet_ids  = module.networking.public_subnet_ids
  private_subnet_ids = module.networking.private_subnet_ids

  alb_security_group_id     = module.security.alb_security_group_id
  gateway_security_group_id = module.security.gateway_security_group_id
  task_execution_role_arn   = module.security.task_execution_role_arn
  task_role_arn             = module.security.task_role_arn
  data_kms_key_arn          = module.security.data_kms_key_arn
  logs_kms_key_arn          = module.security.logs_kms_key_arn
  access_logs_bucket        = module.security.logs_bucket_id
  gateway_secret_arns = {
    database = module.database.app_secret_arn
    redis    = module.cache.auth_secret_arn
    amqp     = module.messaging.credentials_secret_arn
  }

  acm_certificate_arn     = var.acm_certificate_arn
  smoke_test_cidrs        = var.smoke_test_cidrs
  alb_deletion_protection = var.deletion_protection

  image_tag                   = var.gateway_image_tag
  cpu_architecture            = var.gateway_cpu_architecture
  task_cpu                    = var.gateway_task_cpu
  task_memory                 = var.gateway_task_memory
  desired_count               = var.gateway_desired_count
  autoscaling_min_capacity    = var.gateway_min_capacity
  autoscaling_max_capacity    = var.gateway_max_capacity
  connections_per_task_target = var.gateway_connections_per_task_target
  prometheus_remote_write_url = module.monitoring.prometheus_remote_write_url
  critical_alert_topic_arn    = module.monitoring.alert_topic_arns["critical"]
  warning_alert_topic_arn     = module.monitoring.alert_topic_arns["warning"]

  jwt_jwks_url = var.jwt_jwks_url
  jwt_issuer   = var.jwt_issuer
  jwt_audience = var.jwt_audience
}
