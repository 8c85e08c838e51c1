# Remote state, created by terraform/bootstrap (S3 bucket with versioning and KMS encryption,
# DynamoDB table for locking). Add kms_key_id at init time:
#   terraform init -backend-config="kms_key_id=$(terraform -chdir=../../bootstrap output -raw state_kms_key_arn)"
terraform {
  backend "s3" {
    bucket         = "collabgate-dev-terraform-state"
    key            = "environments/dev/terraform.tfstate"
    region         = "us-east-1"
    dynamodb_table = "collabgate-dev-terraform-locks"
    encrypt        = true
  }
}
