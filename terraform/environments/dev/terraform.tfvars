# collabgate dev: smallest footprint that still runs every component the way production does
# (TLS everywhere, KMS, secrets, flow logs, CloudTrail). One NAT gateway, single-AZ database,
# single-node Redis and RabbitMQ. Values marked ACCOUNT-SPECIFIC must be replaced.

environment       = "dev"
region            = "us-east-1"
state_bucket_name = "collabgate-dev-terraform-state"

availability_zones   = ["us-east-1a", "us-east-1b", "us-east-1c"]
vpc_cidr             = "10.10.0.0/16"
public_subnet_cidrs  = ["10.10.0.0/24", "10.10.1.0/24", "10.10.2.0/24"]
private_subnet_cidrs = ["10.10.16.0/20", "10.10.32.0/20", "10.10.48.0/20"]
nat_gateway_count    = 1

# Edge and identity (ACCOUNT-SPECIFIC).
acm_certificate_arn = "arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000002"
smoke_test_cidrs    = []
jwt_jwks_url        = "https://login-dev.example-hospital.org/.well-known/jwks.json"
jwt_issuer          = "https://login-dev.example-hospital.org/"
jwt_audience        = "collabgate"
github_repository   = "example-hospital/collabgate"

gateway_image_tag                   = "0.1.0"
gateway_cpu_architecture            = "X86_64"
gateway_task_cpu                    = 512
gateway_task_memory                 = 1024
gateway_desired_count               = 1
gateway_min_capacity                = 1
gateway_max_capacity                = 2
gateway_connections_per_task_target = 500

db_engine_version        = "15"
db_instance_class        = "db.t3.medium"
db_allocated_storage_gb  = 20
db_multi_az              = false
db_create_read_replica   = false
db_backup_retention_days = 3

redis_node_type     = "cache.t4g.micro"
redis_replica_count = 0
redis_multi_az      = false

mq_instance_type   = "mq.t3.micro"
mq_deployment_mode = "SINGLE_INSTANCE"

secret_rotation_lambda_arn  = "arn:aws:lambda:us-east-1:111122223333:function:collabgate-dev-secret-rotation"
secret_recovery_window_days = 7

alert_email_addresses    = []
runbook_base_url         = "https://github.com/example-hospital/collabgate/blob/main/docs/runbooks"
grafana_admin_group_ids  = []
grafana_viewer_group_ids = []
