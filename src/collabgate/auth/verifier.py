"""JWT verification: token in, :class:`Principal` out, or a JWT_* protocol error.

Algorithm confusion is impossible by construction: every trusted key carries the one algorithm
its *type* allows (RSA public key → RS256, P-256 public key → ES256, configured shared secret →
HS256), and a token is only ever checked against keys whose algorithm equals the token's ``alg``,
with ``algorithms=[that algorithm]``. ``none`` is never accepted, and an RSA key is never handed to
HMAC.

Keys come from a PEM file, a JWKS URL (picked by the token's ``kid``), an HS256 secret (development
only) and the development key pair; any combination may be configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import HMACAlgorithm, get_default_algorithms
from jwt.exceptions import InvalidIssuedAtError, InvalidSubjectError
from jwt.types import Options

from collabgate.auth.devkeys import ensure_dev_keys
from collabgate.auth.principal import Principal, Role
from collabgate.errors import JwtExpired, JwtInvalid, JwtMissing
from collabgate.settings import Settings, SettingsError

log = structlog.get_logger(__name__)

#: Minimum time between two JWKS downloads, whatever triggers them (unknown kid, stale cache,
#: failed fetch): random ``kid`` values in forged tokens cannot make us hammer the IdP.
DEFAULT_JWKS_REFETCH_INTERVAL = 10.0
JWKS_TIMEOUT_SECONDS = 5.0
MAX_JWKS_BYTES = 1_048_576
#: Longer tokens are refused before any parsing (bounds pre-authentication work).
MAX_TOKEN_CHARS = 16_384
MIN_RSA_BITS = 2048
MIN_HS256_SECRET_BYTES = 32

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256"})
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_PEM_VARIABLE = "COLLABGATE_JWT_PUBLIC_KEY_FILE"
_JWKS_VARIABLE = "COLLABGATE_JWT_JWKS_URL"
_SECRET_VARIABLE = "COLLABGATE_JWT_HS256_SECRET"


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A trusted key and the single algorithm it may verify."""

    algorithm: str
    key: PublicKey | bytes
    kid: str | None = None
    source: str = ""

    def __repr__(self) -> str:  # never print an HS256 secret
        return f"VerificationKey({self.algorithm}, kid={self.kid!r}, source={self.source!r})"


def key_for_public_key(key: object, *, kid: str | None, source: str) -> VerificationKey | None:
    """Bind a public key to the algorithm its type allows; ``None`` for any other key type."""
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return VerificationKey("RS256", key, kid, source)
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return VerificationKey("ES256", key, kid, source)
    return None


# --- JWKS --------------------------------------------------------------------------------------


class JwksError(Exception):
    """The JWKS could not be fetched or holds no usable key (message is safe to log)."""


def parse_jwks(body: bytes) -> tuple[VerificationKey, ...]:
    """Usable RS256/ES256 signature keys of a JWK set; raise :class:`JwksError` if there are none."""
    try:
        document = json.loads(body)
    except ValueError:
        raise JwksError("JWKS response is not JSON") from None
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list):
        raise JwksError("JWKS response has no 'keys' list")
    keys = tuple(key for key in map(jwk_to_key, members) if key is not None)
    if not keys:
        raise JwksError("JWKS holds no usable RS256/ES256 signature key")
    if len(keys) < len(members):
        log.warning("jwks_keys_skipped", skipped=len(members) - len(keys), usable=len(keys))
    return keys


def jwk_to_key(member: object) -> VerificationKey | None:
    """One JWK as a verification key, or ``None`` when it is not a public RS256/ES256 sig key."""
    if not isinstance(member, dict) or member.get("use", "sig") != "sig":
        return None
    kid = member.get("kid")
    try:
        parsed = jwt.PyJWK(member)
    except jwt.PyJWTError:
        return None
    key = key_for_public_key(parsed.key, kid=kid if isinstance(kid, str) else None, source="jwks")
    # A key declared for another algorithm (PS256, RS512, ...) is not silently reused as RS256.
    if key is None or key.algorithm != parsed.algorithm_name:
        return None
    return key


class JwksKeys:
    """Keys of a JWKS URL, cached, refreshed without blocking the event loop.

    At most one download runs at a time (callers share it) and downloads start at most once per
    ``refetch_interval``, whatever asks for them. Stale keys are served while a background
    download replaces them; when a download fails the previous keys stay in use.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        refetch_interval: float = DEFAULT_JWKS_REFETCH_INTERVAL,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._cache_seconds = cache_seconds
        self._refetch_interval = refetch_interval
        self._http_client = http_client
        self._clock = clock
        self._keys: tuple[VerificationKey, ...] = ()
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._healthy = False
        self._inflight: asyncio.Task[None] | None = None

    @property
    def keys(self) -> tuple[VerificationKey, ...]:
        return self._keys

    @property
    def healthy(self) -> bool:
        """The last download succeeded (stale keys may still be served while this is false)."""
        return self._healthy

    async def current(self) -> tuple[VerificationKey, ...]:
        """The cached keys; waits for a download only when there are none yet."""
        stale = self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_seconds
        if stale and self._keys:
            self._start_refresh()
        elif stale:
            await self.refresh()
        return self._keys

    async def refresh(self) -> None:
        """Download the JWKS now unless one download is running (join it) or ran too recently."""
        task = self._start_refresh()
        if task is not None:
            # shield: a caller that goes away (client disconnect) must not cancel the download.
            await asyncio.shield(task)

    async def aclose(self) -> None:
        task = self._inflight
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start_refresh(self) -> asyncio.Task[None] | None:
        if self._inflight is None:
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._refetch_interval:
                return None
            self._last_attempt = now
            self._inflight = asyncio.create_task(self._refresh_once(), name="jwks-refresh")
        return self._inflight

    async def _refresh_once(self) -> None:
        try:
            keys = parse_jwks(await self._download())
        except Exception as exc:  # whatever goes wrong, keep serving the cached keys
            self._healthy = False
            log.warning(
                "jwks_fetch_failed",
                url=_loggable_url(self.url),
                problem=_describe_fetch_error(exc),
                cached_keys=len(self._keys),
            )
        else:
            kids_before = {key.kid for key in self._keys}
            self._keys, self._fetched_at, self._healthy = keys, self._clock(), True
            if {key.kid for key in keys} != kids_before:
                kids = [key.kid for key in keys]
                log.info("jwks_keys_loaded", url=_loggable_url(self.url), kids=kids)
        finally:
            self._inflight = None

    async def _download(self) -> bytes:
        if self._http_client is not None:
            return await self._download_with(self._http_client)
        # A client per download (rare: at most one per refetch interval) is never bound to a
        # stale event loop and leaves nothing to close.
        async with httpx.AsyncClient(timeout=JWKS_TIMEOUT_SECONDS) as client:
            return await self._download_with(client)

    async def _download_with(self, client: httpx.AsyncClient) -> bytes:
        request = client.stream("GET", self.url, headers={"Accept": "application/json"})
        async with request as response:
            if response.status_code != 200:
                raise JwksError(f"JWKS URL answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError(f"JWKS response is larger than {MAX_JWKS_BYTES} bytes")
            return bytes(body)


def _loggable_url(url: str) -> str:
    """The URL without user info, query or fragment (they may carry credentials)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _describe_fetch_error(exc: Exception) -> str:
    if isinstance(exc, JwksError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --- the verifier ------------------------------------------------------------------------------


class TokenVerifier:
    """Turns a bearer token into a :class:`Principal` or raises JwtMissing/JwtInvalid/JwtExpired."""

    def __init__(
        self,
        *,
        static_keys: Sequence[VerificationKey] = (),
        jwks: JwksKeys | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        role_claim: str = "role",
        leeway_seconds: float = 0.0,
    ) -> None:
        self._static_keys = tuple(static_keys)
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._role_claim = role_claim
        self._leeway = leeway_seconds
        self._algorithms = frozenset(key.algorithm for key in self._static_keys) | (
            ASYMMETRIC_ALGORITHMS if jwks is not None else frozenset()
        )
        self._options: Options = {
            "require": ["exp", "sub"],
            "verify_iss": issuer is not None,
            "verify_aud": audience is not None,
        }

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        jwks_refetch_interval: float = DEFAULT_JWKS_REFETCH_INTERVAL,
        http_client: httpx.AsyncClient | None = None,
    ) -> TokenVerifier:
        """Build from settings; raise :class:`SettingsError` naming the variable on bad config."""
        static_keys: list[VerificationKey] = []
        if settings.jwt_public_key_file is not None:
            static_keys.append(load_public_key_file(settings.jwt_public_key_file))
        hs256 = _hs256_key(settings)
        if hs256 is not None:
            static_keys.append(hs256)
        if settings.dev_keys:
            dev = ensure_dev_keys(settings.dev_keys_dir)
            static_keys.append(VerificationKey("ES256", dev.public_key, dev.kid, "dev"))
        for key in static_keys:
            if key.source in ("dev", "hs256"):
                log.warning("jwt_development_key_trusted", source=key.source, kid=key.kid)
        jwks = None
        if settings.jwt_jwks_url:
            jwks = JwksKeys(
                _check_jwks_url(settings.jwt_jwks_url),
                cache_seconds=settings.jwt_jwks_cache_seconds,
                refetch_interval=jwks_refetch_interval,
                http_client=http_client,
            )
        if not static_keys and jwks is None:
            raise SettingsError(
                f"no JWT signing key configured: set {_PEM_VARIABLE} (PEM public key) or "
                f"{_JWKS_VARIABLE} (for development: COLLABGATE_DEV_KEYS=true, or "
                f"COLLABGATE_JWT_ALLOW_HS256=true with {_SECRET_VARIABLE})"
            )
        return cls(
            static_keys=static_keys,
            jwks=jwks,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            role_claim=settings.jwt_role_claim,
            leeway_seconds=settings.jwt_leeway_seconds,
        )

    @property
    def jwks_healthy(self) -> bool:
        """For readiness: true without a JWKS URL, else whether the last JWKS download worked."""
        return self._jwks is None or self._jwks.healthy

    async def warm_up(self) -> None:
        """Fetch the JWKS now (at start-up) instead of on the first connection."""
        if self._jwks is not None:
            await self._jwks.current()

    async def aclose(self) -> None:
        if self._jwks is not None:
            await self._jwks.aclose()

    async def verify(self, token: str | None) -> Principal:
        if not token:
            raise JwtMissing("no token: send Authorization: Bearer <jwt> or ?token=")
        if len(token) > MAX_TOKEN_CHARS:
            raise JwtInvalid(f"malformed token: longer than {MAX_TOKEN_CHARS} characters")
        algorithm, kid = _read_header(token)
        if algorithm not in self._algorithms:
            raise JwtInvalid(_algorithm_problem(algorithm, self._algorithms))
        candidates = await self._candidate_keys(algorithm, kid)
        return self._principal(self._decode(token, candidates))

    async def _candidate_keys(self, algorithm: str, kid: str | None) -> list[VerificationKey]:
        keys = await self._all_keys()
        if kid is None:
            candidates = _with_algorithm(keys, algorithm)
        else:
            matched = _with_kid(keys, algorithm, kid)
            if not matched and self._jwks is not None:
                await self._jwks.refresh()  # maybe a rotated key; rate limited
                keys = self._static_keys + self._jwks.keys
                matched = _with_kid(keys, algorithm, kid)
            # Keys without a kid (PEM file, HS256 secret) sign tokens whatever their kid says.
            candidates = matched or [key for key in _with_algorithm(keys, algorithm) if not key.kid]
        if not candidates:
            raise JwtInvalid(self._no_key_problem(kid))
        return candidates

    async def _all_keys(self) -> tuple[VerificationKey, ...]:
        if self._jwks is None:
            return self._static_keys
        return self._static_keys + await self._jwks.current()

    def _no_key_problem(self, kid: str | None) -> str:
        if self._jwks is not None and not self._jwks.keys:
            return "signing keys unavailable"
        if kid is not None:
            return "no trusted signing key has the token's kid"
        return "no trusted signing key for the token's algorithm"

    def _decode(self, token: str, candidates: Iterable[VerificationKey]) -> dict[str, Any]:
        for key in candidates:
            try:
                return jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.algorithm],
                    options=self._options,
                    issuer=self._issuer,
                    audience=self._audience,
                    leeway=self._leeway,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError as exc:
                raise _translate(exc) from None
        raise JwtInvalid("signature verification failed")

    def _principal(self, claims: dict[str, Any]) -> Principal:
        sub, exp = claims["sub"], claims["exp"]
        if not isinstance(sub, str) or not sub.strip():
            raise JwtInvalid("invalid token: sub claim must be a non-empty string")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise JwtInvalid("invalid token: exp claim must be a number")
        name = claims.get("name")
        return Principal(
            user_id=sub,
            role=Role.from_claim(claim_at_path(claims, self._role_claim)),
            name=name if isinstance(name, str) and name else None,
            expires_at=int(exp),
        )


def claim_at_path(claims: dict[str, Any], path: str) -> object:
    """The value at a dot path (``realm_access.roles``), or ``None``.

    A key that itself contains dots (Auth0's ``https://example.com/roles``) is matched whole first.
    """
    if path in claims:
        return claims[path]
    for index, character in enumerate(path):
        if character == ".":
            child = claims.get(path[:index])
            if isinstance(child, dict):
                found = claim_at_path(child, path[index + 1 :])
                if found is not None:
                    return found
    return None


def _read_header(token: str) -> tuple[str, str | None]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise JwtInvalid("malformed token: not a signed JWT (header.payload.signature)") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise JwtInvalid("malformed token: header has no alg")
    kid = header.get("kid")  # PyJWT has checked it is a string when present
    return algorithm, kid if isinstance(kid, str) else None


def _algorithm_problem(algorithm: str, accepted: Iterable[str]) -> str:
    allowed = ", ".join(sorted(accepted))
    if algorithm.lower() == "none":
        return f"unsigned tokens (alg none) are not accepted; accepted: {allowed}"
    # The header is attacker-controlled: only name algorithms we know, never echo arbitrary text.
    shown = repr(algorithm) if algorithm in get_default_algorithms() else "given"
    return f"token algorithm {shown} is not accepted; accepted: {allowed}"


def _with_algorithm(keys: Iterable[VerificationKey], algorithm: str) -> list[VerificationKey]:
    return [key for key in keys if key.algorithm == algorithm]


def _with_kid(keys: Iterable[VerificationKey], algorithm: str, kid: str) -> list[VerificationKey]:
    return [key for key in keys if key.kid == kid and key.algorithm == algorithm]


def _translate(exc: jwt.PyJWTError) -> JwtInvalid | JwtExpired:
    """A PyJWT error as a protocol error, with a fixed message (nothing from the token)."""
    match exc:
        case jwt.ExpiredSignatureError():
            return JwtExpired("token expired")
        case jwt.MissingRequiredClaimError():
            return JwtInvalid(f"invalid token: required claim {exc.claim} is missing")
        case jwt.InvalidIssuerError():
            return JwtInvalid("invalid token: issuer (iss) does not match")
        case jwt.InvalidAudienceError():
            return JwtInvalid("invalid token: audience (aud) does not match")
        case jwt.ImmatureSignatureError():
            return JwtInvalid("invalid token: not valid yet (nbf/iat in the future)")
        case InvalidSubjectError():
            return JwtInvalid("invalid token: sub claim must be a non-empty string")
        case InvalidIssuedAtError():
            return JwtInvalid("invalid token: iat claim must be a number")
        case jwt.InvalidAlgorithmError():
            return JwtInvalid("invalid token: algorithm not accepted for this key")
        case jwt.DecodeError():
            return JwtInvalid("malformed token: undecodable payload or claim")
        case _:
            return JwtInvalid("invalid token")


# --- configuration -----------------------------------------------------------------------------


def load_public_key_file(path: Path) -> VerificationKey:
    """The PEM public key (or X.509 certificate) in ``path``; :class:`SettingsError` otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{_PEM_VARIABLE}: cannot read {path}: {exc.strerror}") from None
    public_key = _parse_public_pem(data)
    if public_key is None:
        raise SettingsError(
            f"{_PEM_VARIABLE}: {path} is not a PEM public key or certificate "
            "(expected -----BEGIN PUBLIC KEY-----; a private key is not accepted)"
        )
    key = key_for_public_key(public_key, kid=None, source="pem")
    if key is None:
        raise SettingsError(
            f"{_PEM_VARIABLE}: {path} must hold an RSA (>= {MIN_RSA_BITS} bits, RS256) "
            "or P-256 EC (ES256) public key"
        )
    return key


def _parse_public_pem(data: bytes) -> object | None:
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        pass
    try:
        return x509.load_pem_x509_certificate(data).public_key()
    except (ValueError, TypeError):
        return None


def _hs256_key(settings: Settings) -> VerificationKey | None:
    if not settings.jwt_allow_hs256:
        return None  # Settings refuses a secret without the flag
    if settings.jwt_hs256_secret is None:
        raise SettingsError(f"COLLABGATE_JWT_ALLOW_HS256 is true but {_SECRET_VARIABLE} is not set")
    secret = settings.jwt_hs256_secret.get_secret_value().encode()
    if len(secret) < MIN_HS256_SECRET_BYTES:
        raise SettingsError(
            f"{_SECRET_VARIABLE} must be at least {MIN_HS256_SECRET_BYTES} bytes (RFC 7518 §3.2)"
        )
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
    except jwt.InvalidKeyError:
        raise SettingsError(
            f"{_SECRET_VARIABLE} looks like a public key or certificate, not a shared secret"
        ) from None
    return VerificationKey("HS256", secret, None, "hs256")


def _check_jwks_url(url: str) -> str:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingsError(f"{_JWKS_VARIABLE}: invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{_JWKS_VARIABLE}: expected an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        log.warning("jwks_url_not_https", url=_loggable_url(url))
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
