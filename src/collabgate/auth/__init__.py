"""Authentication: JWT verification and the principal a connection acts as."""

from collabgate.auth.devkeys import DevKeys, ensure_dev_keys, mint_token
from collabgate.auth.principal import Principal, Role
from collabgate.auth.verifier import TokenVerifier

__all__ = ["DevKeys", "Principal", "Role", "TokenVerifier", "ensure_dev_keys", "mint_token"]
