provider "aws" {
  region = var.region

  # Every taggable resource of every module gets these tags.
  default_tags {
    tags = {
      Environment        = var.environment
      Project            = "collabgate"
      ManagedBy          = "terraform"
      DataClassification = "phi"
    }
  }
}
