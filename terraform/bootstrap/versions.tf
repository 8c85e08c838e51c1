terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }

  # The bootstrap stack keeps its own (small, secret-free) state locally on the first apply;
  # terraform/README.md shows how to move it into the bucket it has just created.
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Environment = var.environment
      Project     = "collabgate"
      ManagedBy   = "terraform"
      Stack       = "bootstrap"
    }
  }
}
