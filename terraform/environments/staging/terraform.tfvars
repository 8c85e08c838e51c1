# collabgate staging: production topology (three AZs, Multi-AZ database, Redis with a replica),
# smaller and cheaper where failover behaviour is not what is being tested. Values marked
# ACCOUNT-SPECIFIC must be replaced before the first plan.

environment       = "staging"
region            = "us-east-1"
state_bucket_name = "collabgate-staging-terraform-state"

availability_zones   = ["us-east-1a", "us-east-1b", "us-east-1c"]
vpc_cidr             = "10.20.0.0/16"
public_subnet_cidrs  = ["10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/24"]
private_subnet_cidrs = ["10.20.16.0/20", "10.20.32.0/20", "10.20.48.0/20"]
nat_gateway_count    = 1

# Edge and identity (ACCOUNT-SPECIFIC).
acm_certificate_arn = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000001"
smoke_test_cidrs    = []
jwt_jwks_url        = "https://login-staging.example-hospital.org/.well-known/jwks.json"
jwt_issuer          = "https://login-staging.example-hospital.org/"
jwt_audience        = "collabgate"
github_repository   = "example-hospital/collabgate"

gateway_image_tag                   = "0.1.0"
gateway_cpu_architecture            = "X86_64"
gateway_task_cpu                    = 1024
gateway_task_memory                 = 2048
gateway_desired_count               = 2
gateway_min_capacity                = 2
gateway_max_capacity                = 4
gateway_connections_per_task_target = 1000

db_engine_version        = "15"
db_instance_class        = "db.t3.medium"
db_allocated_storage_gb  = 50
db_multi_az              = true
db_create_read_replica   = false
db_backup_retention_days = 7

redis_node_type     = "cache.t4g.small"
redis_replica_count = 1
redis_multi_az      = true

mq_instance_type   = "mq.m5.large"
mq_deployment_mode = "SINGLE_INSTANCE"

secret_rotation_lambda_arn  = "arn:aws:lambda:us-east-1:111122223333:function:collabgate-staging-secret-rotation"
secret_recovery_window_days = 7

alert_email_addresses    = ["collabgate-dev@example-hospital.org"]
runbook_base_url         = "https://github.com/example-hospital/collabgate/blob/main/docs/runbooks"
grafana_admin_group_ids  = []
grafana_viewer_group_ids = []
