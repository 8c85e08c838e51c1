"""The blue/green deploy controller: a new image on the idle colour, smoke-tested, then traffic
shifted to it step by step, with automatic rollback (terraform/README.md, "Blue/green")."""
