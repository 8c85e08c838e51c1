# Messaging: Amazon MQ for RabbitMQ. Production runs the 3-node cluster deployment
# (CLUSTER_MULTI_AZ: one node per AZ behind a single AMQPS endpoint); the gateway declares its
# exchanges and quorum queues itself (durable topology, bounded shard keys).

# RabbitMQ password: 12-250 characters, no commas, colons or equal signs.
resource "random_password" "amqp" {
  length  = 40
  special = false
}

resource "aws_mq_broker" "this" {
  #checkov:skip=CKV_AWS_209:Amazon MQ for RabbitMQ supports only AWS-owned KMS keys for encryption at rest; customer managed keys apply to ActiveMQ only.
  broker_name                = "${var.name}-rabbitmq"
  engine_type                = "RabbitMQ"
  engine_version             = var.engine_version
  host_instance_type         = var.instance_type
  deployment_mode            = var.deployment_mode
  auto_minor_version_upgrade = true
  apply_immediately          = false
  publicly_accessible        = false
  subnet_ids                 = var.deployment_mode == "SINGLE_INSTANCE" ? [var.subnet_ids[0]] : var.subnet_ids
  security_groups            = var.security_group_ids

  encryption_options {
    use_aws_owned_key = true
  }

  logs {
    general = true
  }

  maintenance_window_start_time {
    day_of_week = "SUNDAY"
    time_of_day = "06:00"
    time_zone   = "UTC"
  }

  user {
    username = var.username
    password = random_password.amqp.result
  }

  # The rotation function changes the password afterwards.
  lifecycle {
    ignore_changes = [user]
  }
}

locals {
  amqps_endpoint = aws_mq_broker.this.instances[0].endpoints[0]
}

# First value of the amqp secret owned by the security module; rotation owns it afterwards.
resource "aws_secretsmanager_secret_version" "amqp" {
  secret_id = var.credentials_secret_arn
  secret_string = jsonencode({
    endpoint = local.amqps_endpoint
    username = var.username
    password = random_password.amqp.result
    url      = "amqps://${var.username}:${random_password.amqp.result}@${trimprefix(local.amqps_endpoint, "amqps://")}/%2F"
  })

  lifecycle {
    ignore_changes = [secret_string]
  }
}
