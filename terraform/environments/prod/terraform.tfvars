# collabgate production. Values marked ACCOUNT-SPECIFIC must be replaced before the first plan
# (111122223333 is AWS's documentation account ID); sizes are EPIC-003 DEVOPS-001.1.

environment       = "prod"
region            = "us-east-1"
state_bucket_name = "collabgate-prod-terraform-state"

# Networking: 10.0.0.0/16, 3 public + 3 private subnets over three AZs, one NAT gateway per AZ.
availability_zones   = ["us-east-1a", "us-east-1b", "us-east-1c"]
vpc_cidr             = "10.0.0.0/16"
public_subnet_cidrs  = ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
private_subnet_cidrs = ["10.0.16.0/20", "10.0.32.0/20", "10.0.48.0/20"]
nat_gateway_count    = 3

# Edge and identity (ACCOUNT-SPECIFIC).
acm_certificate_arn = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000000"
smoke_test_cidrs    = []
jwt_jwks_url        = "https://login.example-hospital.org/.well-known/jwks.json"
jwt_issuer          = "https://login.example-hospital.org/"
jwt_audience        = "collabgate"
github_repository   = "example-hospital/collabgate"

# Gateway: 1 vCPU / 2048 MB per task, 3 tasks, autoscaling 3-10 per colour.
gateway_image_tag                   = "0.1.0"
gateway_cpu_architecture            = "X86_64"
gateway_task_cpu                    = 1024
gateway_task_memory                 = 2048
gateway_desired_count               = 3
gateway_min_capacity                = 3
gateway_max_capacity                = 10
gateway_connections_per_task_target = 1000

# PostgreSQL 15, db.t3.medium, 100 GB gp3, Multi-AZ, 7 days of automated backups, read replica.
db_engine_version        = "15"
db_instance_class        = "db.t3.medium"
db_allocated_storage_gb  = 100
db_multi_az              = true
db_create_read_replica   = true
db_backup_retention_days = 7
# Cross-region copy of the daily snapshots: create a vault in the DR region, then e.g.
# backup_copy_destination_vault_arn = "arn:aws:backup:us-west-2:111122223333:backup-vault:collabgate-prod-dr"
backup_copy_destination_vault_arn = null

# Redis: primary + replica.
redis_node_type     = "cache.t4g.medium"
redis_replica_count = 1
redis_multi_az      = true

# RabbitMQ: 3-node cluster.
mq_instance_type   = "mq.m5.large"
mq_deployment_mode = "CLUSTER_MULTI_AZ"

# Secrets (ACCOUNT-SPECIFIC): see README "Secret rotation".
secret_rotation_lambda_arn  = "arn:aws:lambda:us-east-1:111122223333:function:collabgate-prod-secret-rotation"
secret_recovery_window_days = 30

# Monitoring (ACCOUNT-SPECIFIC).
alert_email_addresses    = ["collabgate-oncall@example-hospital.org"]
runbook_base_url         = "https://github.com/example-hospital/collabgate/blob/main/docs/runbooks"
grafana_admin_group_ids  = []
grafana_viewer_group_ids = []
