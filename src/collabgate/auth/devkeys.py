"""A development signing key pair, so a gateway can run without an identity provider.

``collabgate dev`` / ``collabgate token`` mint ES256 tokens with the private key; a verifier built
with ``COLLABGATE_DEV_KEYS=true`` trusts the public key. The pair lives under
``DATA_DIR/dev-keys/`` (git-ignored) and is generated once, then reused, so tokens minted by one
process verify in another.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from collabgate.auth.principal import Role

PRIVATE_KEY_FILE = "private.pem"
PUBLIC_KEY_FILE = "public.pem"
DEV_KEY_ALGORITHM = "ES256"


@dataclass(frozen=True, slots=True)
class DevKeys:
    """The development key pair; ``kid`` is the RFC 7638 thumbprint of the public key."""

    directory: Path
    private_key: ec.EllipticCurvePrivateKey
    public_key: ec.EllipticCurvePublicKey
    kid: str

    @property
    def private_key_file(self) -> Path:
        return self.directory / PRIVATE_KEY_FILE

    @property
    def public_key_file(self) -> Path:
        return self.directory / PUBLIC_KEY_FILE

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (with ``kid``, ``alg``, ``use``), e.g. to serve as a JWKS."""
        return {
            **ec_public_jwk_members(self.public_key),
            "kid": self.kid,
            "alg": DEV_KEY_ALGORITHM,
            "use": "sig",
        }


def ensure_dev_keys(directory: Path) -> DevKeys:
    """Load the key pair in ``directory``, generating it the first time.

    Safe when several processes start at once: the private key is created with an atomic
    link-if-absent, so exactly one generated key wins and everybody loads that one.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_file = directory / PRIVATE_KEY_FILE
    if not private_file.exists():
        _create_private_key(private_file)
    private_key = load_dev_private_key(private_file)
    public_key = private_key.public_key()
    _write_public_key(directory / PUBLIC_KEY_FILE, public_key)
    return DevKeys(directory, private_key, public_key, ec_thumbprint(public_key))


def load_dev_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path} is not a P-256 (ES256) private key; delete it to regenerate")
    return key


def mint_token(
    keys: DevKeys,
    *,
    sub: str,
    role: Role | str | list[str],
    ttl_seconds: int = 3600,
    name: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
    role_claim: str = "role",
) -> str:
    """Sign an ES256 token with the development key.

    ``role`` goes to the dot path ``role_claim`` (``realm_access.roles`` nests it). ``extra_claims``
    are applied last, so they may override any standard claim (handy for tests).
    """
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl_seconds}
    _set_dot_path(claims, role_claim, _role_value(role))
    if name is not None:
        claims["name"] = name
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    claims.update(extra_claims or {})
    return jwt.encode(
        claims,
        keys.private_key,
        algorithm=DEV_KEY_ALGORITHM,
        headers={"kid": keys.kid, "typ": "JWT"},
    )


def ec_public_jwk_members(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The required members of a P-256 public JWK (``crv``, ``kty``, ``x``, ``y``)."""
    numbers = public_key.public_numbers()
    size = (public_key.curve.key_size + 7) // 8
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(size, "big")),
        "y": _b64url(numbers.y.to_bytes(size, "big")),
    }


def ec_thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256): stable for a key, different for every other key."""
    canonical = json.dumps(ec_public_jwk_members(public_key), sort_keys=True, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def _create_private_key(private_file: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = private_file.with_name(f".{private_file.name}.{secrets.token_hex(8)}")
    _write_exclusive(temporary, pem)
    try:
        # link() fails when the target exists: another process won the race, use its key.
        os.link(temporary, private_file)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: plain exclusive create
        with contextlib.suppress(FileExistsError):
            _write_exclusive(private_file, pem)
    finally:
        temporary.unlink(missing_ok=True)


def _write_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` readable by the owner only (0600); fail if it exists."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _write_public_key(public_file: Path, public_key: ec.EllipticCurvePublicKey) -> None:
    """(Re)write public.pem from the private key, so the two can never disagree."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with contextlib.suppress(FileNotFoundError):
        if public_file.read_bytes() == pem:
            return
    temporary = public_file.with_name(f".{public_file.name}.{secrets.token_hex(8)}")
    temporary.write_bytes(pem)
    os.replace(temporary, public_file)


def _role_value(role: Role | str | list[str]) -> str | list[str]:
    if isinstance(role, list):
        return [str(r) for r in role]
    return str(role)


def _set_dot_path(claims: dict[str, Any], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    node = claims
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
