# Database: RDS for PostgreSQL 15 (Multi-AZ primary and a read replica), TLS enforced by the
# parameter group, KMS encryption, 7 days of automated backups (point-in-time recovery, RPO of
# about 5 minutes) and an AWS Backup plan with daily snapshots kept 30 days and an optional
# copy to a vault in another region (DEVOPS-001.5).

data "aws_partition" "current" {}

# =============================================================================================
# Application credentials: the gateway logs in as var.app_username (created once by the DBA
# step in terraform/README.md), never as the master user. The first value of the secret owned
# by the security module is written here; rotation owns it afterwards.
# =============================================================================================

resource "random_password" "app" {
  length  = 40
  special = false
}

resource "aws_secretsmanager_secret_version" "app" {
  secret_id = var.app_secret_arn
  secret_string = jsonencode({
    engine   = "postgres"
    host     = aws_db_instance.primary.address
    port     = aws_db_instance.primary.port
    dbname   = var.database_name
    username = var.app_username
    password = random_password.app.result
    url      = "postgresql://${var.app_username}:${random_password.app.result}@${aws_db_instance.primary.address}:${aws_db_instance.primary.port}/${var.database_name}?sslmode=require"
  })

  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_db_subnet_group" "this" {
  name        = "${var.name}-postgres"
  description = "Private subnets of ${var.name} for RDS PostgreSQL"
  subnet_ids  = var.subnet_ids
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.name}-postgres15-"
  family      = "postgres15"
  description = "collabgate PostgreSQL 15: TLS only, connection and DDL logging, no bind values in logs"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "ssl_min_protocol_version"
    value = "TLSv1.2"
  }

  parameter {
    name  = "password_encryption"
    value = "scram-sha-256"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  # Bind parameters may carry PHI: never write their values to the logs.
  parameter {
    name  = "log_parameter_max_length"
    value = "0"
  }

  parameter {
    name  = "log_parameter_max_length_on_error"
    value = "0"
  }

  lifecycle {
    create_before_destroy = true
  }
}

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    sid     = "RdsEnhancedMonitoringAssume"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# The instances' exported logs (postgresql, upgrade) land in these groups, created beforehand so
# that they are KMS-encrypted and retained like every other log group.
locals {
  instance_identifiers = var.create_read_replica ? ["${var.name}-postgres", "${var.name}-postgres-replica"] : ["${var.name}-postgres"]
  log_groups = {
    for pair in setproduct(local.instance_identifiers, ["postgresql", "upgrade"]) :
    "${pair[0]}/${pair[1]}" => "/aws/rds/instance/${pair[0]}/${pair[1]}"
  }
}

resource "aws_cloudwatch_log_group" "rds" {
  for_each = local.log_groups

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_db_instance" "primary" {
  #checkov:skip=CKV_AWS_157:Multi-AZ is a per-environment input (true in staging and prod, false in dev); tests/infra asserts it is true in prod.
  identifier     = "${var.name}-postgres"
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class

  allocated_storage     = var.allocated_storage_gb
  max_allocated_storage = var.max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_name                             = var.database_name
  username                            = var.master_username
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = var.secrets_kms_key_arn
  iam_database_authentication_enabled = true

  multi_az               = var.multi_az
  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = var.security_group_ids
  publicly_accessible    = false
  port                   = 5432
  parameter_group_name   = aws_db_parameter_group.this.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  backup_retention_period  = var.backup_retention_days
  backup_window            = "03:00-04:00"
  maintenance_window       = "sun:04:30-sun:05:30"
  copy_tags_to_snapshot    = true
  delete_automated_backups = false

  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false
  apply_immediately           = false

  deletion_protection       = var.deletion_protection
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-postgres-final"

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]

  depends_on = [aws_iam_role_policy_attachment.monitoring, aws_cloudwatch_log_group.rds]
}

resource "aws_db_instance" "replica" {
  #checkov:skip=CKV_AWS_157:A read replica for read scaling and regional recovery; high availability comes from the Multi-AZ primary.
  count = var.create_read_replica ? 1 : 0

  identifier          = "${var.name}-postgres-replica"
  replicate_source_db = aws_db_instance.primary.identifier
  instance_class      = coalesce(var.replica_instance_class, var.instance_class)

  storage_type          = "gp3"
  max_allocated_storage = var.max_allocated_storage_gb
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  iam_database_authentication_enabled = true
  multi_az                            = false
  vpc_security_group_ids              = var.security_group_ids
  publicly_accessible                 = false
  parameter_group_name                = aws_db_parameter_group.this.name
  ca_cert_identifier                  = "rds-ca-rsa2048-g1"

  auto_minor_version_upgrade = true
  apply_immediately          = false
  maintenance_window         = "sun:05:30-sun:06:30"
  copy_tags_to_snapshot      = true
  deletion_protection        = var.deletion_protection
  skip_final_snapshot        = true

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]

  depends_on = [aws_cloudwatch_log_group.rds]
}

# =============================================================================================
# AWS Backup: daily snapshots kept var.snapshot_retention_days, optionally copied to a vault in
# another region (cross-region disaster recovery).
# =============================================================================================

resource "aws_backup_vault" "this" {
  name        = "${var.name}-postgres"
  kms_key_arn = var.kms_key_arn
}

resource "aws_backup_plan" "this" {
  name = "${var.name}-postgres-daily"

  rule {
    rule_name         = "daily-snapshots"
    target_vault_name = aws_backup_vault.this.name
    schedule          = var.backup_schedule
    start_window      = 60
    completion_window = 360

    lifecycle {
      delete_after = var.snapshot_retention_days
    }

    dynamic "copy_action" {
      for_each = var.backup_copy_destination_vault_arn == null ? [] : [var.backup_copy_destination_vault_arn]

      content {
        destination_vault_arn = copy_action.value

        lifecycle {
          delete_after = var.snapshot_retention_days
        }
      }
    }
  }
}

data "aws_iam_policy_document" "backup_assume" {
  statement {
    sid     = "AwsBackupAssume"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["backup.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "backup" {
  name               = "${var.name}-backup"
  assume_role_policy = data.aws_iam_policy_document.backup_assume.json
}

resource "aws_iam_role_policy_attachment" "backup" {
  role       = aws_iam_role.backup.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
}

resource "aws_iam_role_policy_attachment" "restore" {
  role       = aws_iam_role.backup.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores"
}

resource "aws_backup_selection" "postgres" {
  name         = "${var.name}-postgres"
  plan_id      = aws_backup_plan.this.id
  iam_role_arn = aws_iam_role.backup.arn
  resources    = [aws_db_instance.primary.arn]
}
