"""TokenVerifier and the development keys, against real keys and a real local JWKS server."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import SecretStr

from collabgate.auth import Principal, Role, TokenVerifier, ensure_dev_keys, mint_token
from collabgate.auth.verifier import claim_at_path
from collabgate.errors import JwtExpired, JwtInvalid, JwtMissing
from collabgate.settings import Settings, SettingsError

HS256_SECRET = "a-development-secret-of-at-least-32-bytes!"
HS256_SETTINGS: dict[str, Any] = {
    "jwt_allow_hs256": True,
    "jwt_hs256_secret": SecretStr(HS256_SECRET),
}

# --- keys and tokens ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_pem(directory: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path = directory / "jwt-public.pem"
    path.write_bytes(public_pem(key))
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims; an override of ``None`` removes the claim."""
    base: dict[str, Any] = {"sub": "user-1", "exp": int(time.time()) + 300, "role": "nurse"}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def sign(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    payload: dict[str, Any] | None = None,
    *,
    kid: str | None = None,
) -> str:
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload or claims(), key, algorithm=algorithm, headers=headers)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_made_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to produce (alg none, HS256 keyed with a public key PEM)."""
    signing_input = (
        f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
    )
    if secret is None:
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def pem_verifier(
    tmp_path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, **settings: Any
) -> TokenVerifier:
    return TokenVerifier.from_settings(
        Settings(jwt_public_key_file=write_pem(tmp_path, key), data_dir=tmp_path, **settings)
    )


# --- a real local JWKS server ------------------------------------------------------------------


class JwksServer:
    """Serves ``document`` at /jwks on 127.0.0.1 and counts the requests."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests += 1
                    body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks"

    def serve(self, *keys: tuple[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]) -> None:
        with self._lock:
            self.document = {"keys": [public_jwk(key, kid) for kid, key in keys]}

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": kid, "use": "sig"}


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    with JwksServer() as server:
        yield server


def jwks_verifier(tmp_path: Path, url: str, *, refetch_interval: float = 10.0) -> TokenVerifier:
    settings = Settings(jwt_jwks_url=url, data_dir=tmp_path)
    return TokenVerifier.from_settings(settings, jwks_refetch_interval=refetch_interval)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (up to 2 s) for work done by a background task, e.g. a JWKS refresh."""
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 2 s")


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- PEM keys: RS256, ES256 --------------------------------------------------------------------


async def test_valid_rs256_token_via_pem(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)
    exp = int(time.time()) + 120
    token = sign(rsa_key, claims(sub="alice", role="surgeon", name="Alice A.", exp=exp))

    assert await verifier.verify(token) == Principal("alice", Role.SURGEON, "Alice A.", exp)


async def test_valid_es256_token_via_pem(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = pem_verifier(tmp_path, ec_key)

    principal = await verifier.verify(sign(ec_key, claims(role="anesthesiologist")))

    assert principal.role is Role.ANESTHESIOLOGIST
    assert principal.name is None


async def test_pem_key_accepts_a_token_whatever_its_kid(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    assert (await verifier.verify(sign(rsa_key, kid="some-idp-kid"))).user_id == "user-1"


async def test_missing_token(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)
    for token in (None, ""):
        with pytest.raises(JwtMissing, match="Authorization: Bearer"):
            await verifier.verify(token)


async def test_expired_token(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    with pytest.raises(JwtExpired):
        await verifier.verify(sign(rsa_key, claims(exp=int(time.time()) - 10)))


async def test_leeway_tolerates_clock_skew(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = pem_verifier(tmp_path, rsa_key, jwt_leeway_seconds=60)

    await verifier.verify(sign(rsa_key, claims(exp=int(time.time()) - 10)))


async def test_expired_token_with_a_bad_signature_is_invalid_not_expired(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    with pytest.raises(JwtInvalid, match="signature"):
        await verifier.verify(sign(other_rsa_key, claims(exp=int(time.time()) - 10)))


async def test_wrong_signature(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)
    token = sign(other_rsa_key)

    with pytest.raises(JwtInvalid, match="signature verification failed") as caught:
        await verifier.verify(token)
    assert token not in caught.value.message


async def test_tampered_payload(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)
    header, _, signature = sign(rsa_key).split(".")
    forged_payload = _b64url(json.dumps(claims(role="admin")).encode())

    with pytest.raises(JwtInvalid, match="signature"):
        await verifier.verify(f"{header}.{forged_payload}.{signature}")


@pytest.mark.parametrize("token", ["garbage", "a.b", "a.b.c", "x" * 20_000])
async def test_malformed_token(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, token: str) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    with pytest.raises(JwtInvalid, match="malformed") as caught:
        await verifier.verify(token)
    assert token not in caught.value.message


async def test_alg_none_is_rejected(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)
    token = hand_made_token({"alg": "none", "typ": "JWT"}, claims(role="admin"), None)

    with pytest.raises(JwtInvalid, match="alg none"):
        await verifier.verify(token)


async def test_es256_token_is_rejected_by_an_rsa_only_verifier(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    with pytest.raises(JwtInvalid, match="'ES256' is not accepted; accepted: RS256"):
        await verifier.verify(sign(ec_key))


# --- HS256 and algorithm confusion -------------------------------------------------------------


async def test_hs256_rejected_when_not_enabled(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)
    token = jwt.encode(claims(), HS256_SECRET, algorithm="HS256")

    with pytest.raises(JwtInvalid, match="'HS256' is not accepted"):
        await verifier.verify(token)


async def test_hs256_accepted_when_enabled(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, **HS256_SETTINGS)
    verifier = TokenVerifier.from_settings(settings)

    principal = await verifier.verify(jwt.encode(claims(role="admin"), HS256_SECRET, "HS256"))

    assert principal.role is Role.ADMIN
    with pytest.raises(JwtInvalid, match="signature"):
        await verifier.verify(jwt.encode(claims(), HS256_SECRET + "-other", "HS256"))


@pytest.mark.parametrize("hs256_enabled", [False, True])
async def test_algorithm_confusion_is_impossible(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, hs256_enabled: bool
) -> None:
    """HS256 token whose HMAC secret is the RSA public key PEM the verifier trusts."""
    verifier = pem_verifier(tmp_path, rsa_key, **(HS256_SETTINGS if hs256_enabled else {}))
    pem = public_pem(rsa_key)
    for secret in (pem, pem.strip()):
        token = hand_made_token({"alg": "HS256", "typ": "JWT"}, claims(role="admin"), secret)
        with pytest.raises(JwtInvalid):
            await verifier.verify(token)


@pytest.mark.parametrize(
    ("secret", "problem"),
    [("short", "at least 32 bytes"), (None, "JWT_HS256_SECRET is not set")],
)
def test_hs256_secret_is_checked(tmp_path: Path, secret: str | None, problem: str) -> None:
    hs256_secret = SecretStr(secret) if secret is not None else None
    settings = Settings(jwt_allow_hs256=True, jwt_hs256_secret=hs256_secret, data_dir=tmp_path)

    with pytest.raises(SettingsError, match=problem):
        TokenVerifier.from_settings(settings)


def test_hs256_secret_may_not_be_a_public_key(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    secret = public_pem(rsa_key).decode()
    settings = Settings(jwt_allow_hs256=True, jwt_hs256_secret=SecretStr(secret), data_dir=tmp_path)

    with pytest.raises(SettingsError, match="looks like a public key") as caught:
        TokenVerifier.from_settings(settings)
    assert secret not in str(caught.value)


# --- claims ------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["sub", "exp"])
async def test_required_claims(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, missing: str) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    with pytest.raises(JwtInvalid, match=f"required claim {missing} is missing"):
        await verifier.verify(sign(rsa_key, claims(**{missing: None})))


@pytest.mark.parametrize("sub", ["", "  ", 42])
async def test_sub_must_be_a_non_empty_string(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, sub: object
) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    with pytest.raises(JwtInvalid, match="sub"):
        await verifier.verify(sign(rsa_key, claims(sub=sub)))


async def test_issuer_and_audience_when_configured(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = pem_verifier(
        tmp_path, rsa_key, jwt_issuer="https://idp.example", jwt_audience="collabgate"
    )
    good = {"iss": "https://idp.example", "aud": "collabgate"}

    await verifier.verify(sign(rsa_key, claims(**good)))
    await verifier.verify(sign(rsa_key, claims(**{**good, "aud": ["other", "collabgate"]})))
    with pytest.raises(JwtInvalid, match=r"issuer \(iss\) does not match"):
        await verifier.verify(sign(rsa_key, claims(**{**good, "iss": "https://evil.example"})))
    with pytest.raises(JwtInvalid, match=r"audience \(aud\) does not match"):
        await verifier.verify(sign(rsa_key, claims(**{**good, "aud": "another-app"})))
    with pytest.raises(JwtInvalid, match="required claim iss is missing"):
        await verifier.verify(sign(rsa_key, claims(aud="collabgate")))
    with pytest.raises(JwtInvalid, match="required claim aud is missing"):
        await verifier.verify(sign(rsa_key, claims(iss="https://idp.example")))


async def test_issuer_and_audience_ignored_when_not_configured(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    await verifier.verify(sign(rsa_key, claims(iss="https://idp.example", aud="anything")))


async def test_not_yet_valid(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)

    with pytest.raises(JwtInvalid, match="not valid yet"):
        await verifier.verify(sign(rsa_key, claims(nbf=int(time.time()) + 600)))


async def test_role_claim_path_with_a_list_picks_the_most_privileged(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    verifier = pem_verifier(tmp_path, rsa_key, jwt_role_claim="realm_access.roles")
    payload = claims(role=None, realm_access={"roles": ["offline_access", "nurse", "Surgeon"]})

    assert (await verifier.verify(sign(rsa_key, payload))).role is Role.SURGEON


@pytest.mark.parametrize("role", ["janitor", None, ["x", 3], {"a": 1}])
async def test_unknown_or_missing_role_is_guest(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, role: Any
) -> None:
    verifier = pem_verifier(tmp_path, rsa_key)
    # Claims built here, not at collection: their expiry counts from now.
    assert (await verifier.verify(sign(rsa_key, claims(role=role)))).role is Role.GUEST


def test_claim_at_path() -> None:
    payload = {
        "role": "nurse",
        "realm_access": {"roles": ["admin"]},
        "https://app.example/roles": ["viewer"],
        "a": {"b.c": {"d": "deep"}},
    }
    assert claim_at_path(payload, "role") == "nurse"
    assert claim_at_path(payload, "realm_access.roles") == ["admin"]
    assert claim_at_path(payload, "https://app.example/roles") == ["viewer"]
    assert claim_at_path(payload, "a.b.c.d") == "deep"
    assert claim_at_path(payload, "realm_access.missing") is None
    assert claim_at_path(payload, "role.sub") is None


# --- configuration errors ----------------------------------------------------------------------


def test_no_key_source_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="COLLABGATE_JWT_PUBLIC_KEY_FILE") as caught:
        TokenVerifier.from_settings(Settings(data_dir=tmp_path))
    assert "COLLABGATE_JWT_JWKS_URL" in str(caught.value)


def test_missing_pem_file_is_a_settings_error(tmp_path: Path) -> None:
    settings = Settings(jwt_public_key_file=tmp_path / "absent.pem", data_dir=tmp_path)

    with pytest.raises(SettingsError, match="COLLABGATE_JWT_PUBLIC_KEY_FILE: cannot read"):
        TokenVerifier.from_settings(settings)


def test_unparsable_pem_file_is_a_settings_error(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    private_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for content in (b"not a key", private_pem):
        path = tmp_path / "bad.pem"
        path.write_bytes(content)
        with pytest.raises(SettingsError, match="COLLABGATE_JWT_PUBLIC_KEY_FILE") as caught:
            TokenVerifier.from_settings(Settings(jwt_public_key_file=path, data_dir=tmp_path))
        assert content.decode() not in str(caught.value)


def test_unsupported_key_type_is_a_settings_error(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    with pytest.raises(SettingsError, match=r"RSA .*2048"):
        pem_verifier(tmp_path, weak)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "https://", "http://host:99999/jwks"])
def test_jwks_url_must_be_http(tmp_path: Path, url: str) -> None:
    with pytest.raises(SettingsError, match="COLLABGATE_JWT_JWKS_URL"):
        TokenVerifier.from_settings(Settings(jwt_jwks_url=url, data_dir=tmp_path))


# --- JWKS --------------------------------------------------------------------------------------


async def test_jwks_with_two_keys_selects_by_kid(
    tmp_path: Path,
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.serve(("rsa-1", rsa_key), ("ec-1", ec_key))
    verifier = jwks_verifier(tmp_path, jwks_server.url)

    assert (await verifier.verify(sign(rsa_key, claims(sub="r"), kid="rsa-1"))).user_id == "r"
    assert (await verifier.verify(sign(ec_key, claims(sub="e"), kid="ec-1"))).user_id == "e"
    with pytest.raises(JwtInvalid, match="signature"):  # right kid, another key's signature
        await verifier.verify(sign(other_rsa_key, kid="rsa-1"))
    with pytest.raises(JwtInvalid, match="no trusted signing key has the token's kid"):
        await verifier.verify(sign(ec_key, kid="rsa-1"))  # ES256 token, kid of an RSA key
    assert jwks_server.requests == 1  # cached
    assert verifier.jwks_healthy
    await verifier.aclose()


async def test_jwks_key_rotation(
    tmp_path: Path,
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
) -> None:
    jwks_server.serve(("old", rsa_key))
    verifier = jwks_verifier(tmp_path, jwks_server.url, refetch_interval=0.2)
    await verifier.verify(sign(rsa_key, kid="old"))

    jwks_server.serve(("old", rsa_key), ("new", other_rsa_key))
    await asyncio.sleep(0.25)
    principal = await verifier.verify(sign(other_rsa_key, claims(sub="rotated"), kid="new"))

    assert principal.user_id == "rotated"
    assert jwks_server.requests == 2
    await verifier.aclose()


async def test_unknown_kids_refetch_at_most_once_per_interval(
    tmp_path: Path, jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.serve(("k1", rsa_key))
    verifier = jwks_verifier(tmp_path, jwks_server.url, refetch_interval=0.5)
    await verifier.warm_up()
    assert jwks_server.requests == 1

    async def attempt(kid: str) -> None:
        with pytest.raises(JwtInvalid, match="kid"):
            await verifier.verify(sign(rsa_key, kid=kid))

    await asyncio.sleep(0.55)
    await asyncio.gather(*(attempt(secrets.token_hex(8)) for _ in range(50)))
    assert jwks_server.requests == 2  # one shared refetch for the whole burst
    for _ in range(50):
        await attempt(secrets.token_hex(8))
    assert jwks_server.requests == 2  # rate limited within the interval
    await verifier.aclose()


async def test_concurrent_first_verifications_share_one_fetch(
    tmp_path: Path, jwks_server: JwksServer, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwks_server.serve(("k", ec_key))
    verifier = jwks_verifier(tmp_path, jwks_server.url)

    results = await asyncio.gather(*(verifier.verify(sign(ec_key, kid="k")) for _ in range(20)))

    assert len(results) == 20
    assert jwks_server.requests == 1
    await verifier.aclose()


async def test_jwks_cache_expires_and_is_refreshed_in_the_background(
    tmp_path: Path,
    jwks_server: JwksServer,
    ec_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    jwks_server.serve(("k", ec_key))
    settings = Settings(jwt_jwks_url=jwks_server.url, jwt_jwks_cache_seconds=0.1, data_dir=tmp_path)
    verifier = TokenVerifier.from_settings(settings, jwks_refetch_interval=0.05)
    await verifier.verify(sign(ec_key, kid="k"))
    jwks_server.serve(("k", ec_key), ("k2", rsa_key))

    await asyncio.sleep(0.15)
    await verifier.verify(sign(ec_key, kid="k"))  # served from the stale cache, no waiting
    await eventually(lambda: jwks_server.requests == 2)
    await verifier.verify(sign(rsa_key, kid="k2"))

    assert jwks_server.requests == 2
    await verifier.aclose()


async def test_jwks_down_without_cache(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = jwks_verifier(tmp_path, f"http://127.0.0.1:{unused_port()}/jwks")

    with pytest.raises(JwtInvalid, match="signing keys unavailable"):
        await verifier.verify(sign(ec_key, kid="k"))
    assert not verifier.jwks_healthy
    await verifier.aclose()


async def test_jwks_down_keeps_serving_cached_keys(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    server = JwksServer()
    server.serve(("k", ec_key))
    with server:
        settings = Settings(jwt_jwks_url=server.url, jwt_jwks_cache_seconds=0.05, data_dir=tmp_path)
        verifier = TokenVerifier.from_settings(settings, jwks_refetch_interval=0.05)
        await verifier.warm_up()
        assert verifier.jwks_healthy
    await asyncio.sleep(0.1)

    assert (await verifier.verify(sign(ec_key, kid="k"))).user_id == "user-1"
    await eventually(lambda: not verifier.jwks_healthy)
    assert (await verifier.verify(sign(ec_key, kid="k"))).user_id == "user-1"
    await verifier.aclose()


async def test_jwks_skips_unusable_keys(
    tmp_path: Path,
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.serve(("enc", rsa_key), ("ps", rsa_key), ("good", ec_key))
    jwks_server.document["keys"][0]["use"] = "enc"
    jwks_server.document["keys"][1]["alg"] = "PS256"
    jwks_server.document["keys"].append({"kty": "oct", "k": _b64url(b"s" * 32), "kid": "hmac"})
    verifier = jwks_verifier(tmp_path, jwks_server.url)

    await verifier.verify(sign(ec_key, kid="good"))
    for kid in ("enc", "ps"):
        with pytest.raises(JwtInvalid, match="kid"):
            await verifier.verify(sign(rsa_key, kid=kid))
    with pytest.raises(JwtInvalid, match="'HS256' is not accepted"):
        await verifier.verify(jwt.encode(claims(), b"s" * 32, "HS256", headers={"kid": "hmac"}))
    await verifier.aclose()


async def test_pem_and_jwks_together(
    tmp_path: Path,
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    jwks_server.serve(("idp", ec_key))
    settings = Settings(
        jwt_public_key_file=write_pem(tmp_path, rsa_key),
        jwt_jwks_url=jwks_server.url,
        data_dir=tmp_path,
    )
    verifier = TokenVerifier.from_settings(settings)

    await verifier.verify(sign(ec_key, kid="idp"))
    await verifier.verify(sign(rsa_key))
    await verifier.verify(sign(rsa_key, kid="not-in-jwks"))
    await verifier.aclose()


# --- development keys --------------------------------------------------------------------------


def test_ensure_dev_keys_is_stable_and_private(tmp_path: Path) -> None:
    directory = tmp_path / "dev-keys"
    first = ensure_dev_keys(directory)
    second = ensure_dev_keys(directory)

    assert first.kid == second.kid
    assert first.private_key.private_numbers() == second.private_key.private_numbers()
    assert stat.S_IMODE(first.private_key_file.stat().st_mode) == 0o600
    assert first.public_key_file.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert ensure_dev_keys(tmp_path / "elsewhere").kid != first.kid


def test_ensure_dev_keys_restores_a_deleted_public_key(tmp_path: Path) -> None:
    keys = ensure_dev_keys(tmp_path)
    keys.public_key_file.unlink()

    assert ensure_dev_keys(tmp_path).kid == keys.kid
    assert keys.public_key_file.exists()


async def test_minted_token_verifies_with_dev_keys(tmp_path: Path) -> None:
    settings = Settings(dev_keys=True, data_dir=tmp_path)
    keys = ensure_dev_keys(settings.dev_keys_dir)
    verifier = TokenVerifier.from_settings(settings)

    token = mint_token(keys, sub="bob", role=Role.NURSE, ttl_seconds=60, name="Bob")
    principal = await verifier.verify(token)

    assert (principal.user_id, principal.role, principal.name) == ("bob", Role.NURSE, "Bob")
    assert principal.expires_at is not None
    assert 0 < principal.expires_at - time.time() <= 60
    assert jwt.get_unverified_header(token)["kid"] == keys.kid


async def test_minted_token_with_issuer_audience_and_role_path(tmp_path: Path) -> None:
    settings = Settings(
        dev_keys=True,
        data_dir=tmp_path,
        jwt_issuer="dev",
        jwt_audience="collabgate",
        jwt_role_claim="realm_access.roles",
    )
    keys = ensure_dev_keys(settings.dev_keys_dir)
    verifier = TokenVerifier.from_settings(settings)
    token = mint_token(
        keys,
        sub="carol",
        role=["viewer", "admin"],
        issuer="dev",
        audience="collabgate",
        role_claim="realm_access.roles",
    )

    assert (await verifier.verify(token)).role is Role.ADMIN
    with pytest.raises(JwtExpired):
        await verifier.verify(mint_token(keys, sub="c", role="admin", ttl_seconds=-5))


async def test_dev_token_is_rejected_without_dev_keys(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    keys = ensure_dev_keys(tmp_path / "dev-keys")
    verifier = pem_verifier(tmp_path, rsa_key)

    with pytest.raises(JwtInvalid):
        await verifier.verify(mint_token(keys, sub="mallory", role="admin"))
