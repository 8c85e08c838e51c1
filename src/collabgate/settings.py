"""One typed settings object for the whole gateway.

Every value is read from a ``COLLABGATE_*`` environment variable (``COLLABGATE_PORT`` for
``port``). An invalid value stops start-up with :class:`SettingsError`, whose message names the
variable and what is wrong with it.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "COLLABGATE_"


class SettingsError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # --- network -----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on (0 = any free).")
    instance_id: str = Field(
        "",
        description="Name of this instance in logs, audit and Redis; unique per process (default: hostname:port).",
    )

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Folder for the SQLite database and dev keys.")
    sqlite_path: Path | None = Field(
        None, description="SQLite file (default: DATA_DIR/collabgate.sqlite3)."
    )

    # --- production adapters (any URL set selects that adapter) -------------------------------
    redis_url: SecretStr | None = Field(
        None, description="Redis for sessions, presence and locks (default: in memory)."
    )
    redis_key_prefix: str = Field(
        "collabgate:", min_length=1, description="Prefix of every Redis key."
    )
    redis_socket_timeout_seconds: float = Field(1.0, gt=0, description="Redis call timeout.")
    redis_max_connections: int = Field(100, ge=1, description="Redis connection pool size.")
    redis_pool_timeout_seconds: float = Field(
        1.0, gt=0, description="How long a Redis call waits for a free pooled connection."
    )
    amqp_url: SecretStr | None = Field(
        None, description="RabbitMQ for room events across instances (default: in process)."
    )
    amqp_exchange: str = Field(
        "collabgate.rooms", min_length=1, description="Exchange carrying room events."
    )
    amqp_shards: int = Field(
        64, ge=1, le=4096, description="Routing shards; must be equal on every instance."
    )
    amqp_confirm: bool = Field(True, description="Wait for publisher confirms.")
    amqp_prefetch: int = Field(256, ge=1, description="Unacknowledged deliveries per consumer.")
    amqp_publish_timeout_seconds: float = Field(
        1.0, gt=0, description="Longest wait for a publish."
    )
    bus_republish_max_events: int = Field(
        10_000,
        ge=0,
        description="Edits whose publish failed, kept to publish again when the bus is back.",
    )
    bus_republish_retry_seconds: float = Field(
        1.0, gt=0, description="Pause between tries to publish those edits again."
    )
    bus_gap_repair_attempts: int = Field(
        5,
        ge=0,
        description="Reads of the shared store to recover an edit a room event built on but"
        " that never arrived (0: leave it to the clients' next SYNC).",
    )
    bus_gap_repair_retry_seconds: float = Field(
        1.0, gt=0, description="Pause between those reads while the edit is not stored yet."
    )
    database_url: SecretStr | None = Field(
        None, description="PostgreSQL for documents and audit (default: SQLite)."
    )
    database_pool_min_size: int = Field(1, ge=0, description="PostgreSQL connections kept open.")
    database_pool_max_size: int = Field(10, ge=1, description="Most PostgreSQL connections.")
    database_connect_timeout_seconds: float = Field(
        5.0, gt=0, description="PostgreSQL connect timeout."
    )
    database_command_timeout_seconds: float = Field(
        30.0, gt=0, description="PostgreSQL statement timeout."
    )
    audit_retention_years: int = Field(
        10, ge=1, description="Audit months older than this may be dropped."
    )
    presence_ttl_seconds: float = Field(
        15.0, gt=0, description="An instance silent this long is dead; its users leave."
    )
    session_ttl_seconds: float = Field(
        30.0, gt=0, description="A connection not refreshed this long stops counting."
    )

    # --- authentication ----------------------------------------------------------------------
    jwt_public_key_file: Path | None = Field(
        None, description="PEM public key for RS256/ES256 tokens."
    )
    jwt_jwks_url: str | None = Field(
        None, description="JWKS URL; keys are picked by the token's kid."
    )
    jwt_jwks_cache_seconds: float = Field(
        300.0, gt=0, description="How long fetched JWKS keys are trusted."
    )
    jwt_hs256_secret: SecretStr | None = Field(
        None, description="Shared secret for HS256 (needs JWT_ALLOW_HS256)."
    )
    jwt_allow_hs256: bool = Field(False, description="Accept HS256 tokens (development only).")
    jwt_issuer: str | None = Field(None, description="Required `iss` claim, when set.")
    jwt_audience: str | None = Field(None, description="Required `aud` claim, when set.")
    jwt_role_claim: str = Field(
        "role", min_length=1, description="Dot path of the role claim, e.g. realm_access.roles."
    )
    jwt_leeway_seconds: float = Field(
        0.0, ge=0, le=300, description="Clock skew tolerated on exp/nbf."
    )
    dev_keys: bool = Field(
        False, description="Generate and trust a development key pair under DATA_DIR/dev-keys."
    )

    # --- connections and limits --------------------------------------------------------------
    max_connections: int = Field(
        10_000, ge=1, description="Connections one instance accepts (WS_1001 above)."
    )
    max_connections_per_user: int = Field(
        10, ge=1, description="Concurrent connections per user (WS_1001 above)."
    )
    max_frame_bytes: int = Field(
        1_048_576, ge=1024, description="Largest inbound frame (WS_3004 above)."
    )
    max_awareness_bytes: int = Field(4096, ge=64, description="Largest AWARENESS state, encoded.")
    room_max_users: int = Field(200, ge=1, description="Users one resource admits (WS_4001 above).")
    resource_types: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Resource types served, comma separated (empty = any)."
    )
    max_joined_resources: int = Field(
        50, ge=1, description="Resources one connection may join at once."
    )
    max_updates_in_flight: int = Field(
        16,
        ge=1,
        description="Updates of one connection on their way to the store; at this many its "
        "socket is read no further until the oldest is stored.",
    )
    rate_limit_per_second: float = Field(
        100.0, gt=0, description="Sustained messages per second per connection."
    )
    rate_limit_burst: int = Field(
        200, ge=1, description="Messages a connection may send in a burst."
    )
    heartbeat_timeout_seconds: float = Field(
        60.0, gt=0, description="Silence after which a socket is closed."
    )
    websocket_compression: bool = Field(
        False,
        description=(
            "Negotiate permessage-deflate on /ws (costs CPU on every frame; off by default;"
            " /yjs never compresses)."
        ),
    )
    send_queue_max_bytes: int = Field(
        8_388_608, ge=65_536, description="Unsent bytes after which a slow reader is dropped."
    )

    # --- locks -------------------------------------------------------------------------------
    lock_default_ttl_ms: int = Field(
        300_000, ge=1000, description="Lock TTL when the request names none."
    )
    lock_max_ttl_ms: int = Field(
        3_600_000, ge=1000, description="Longest TTL a lock may be granted."
    )
    lock_holder_grace_seconds: float = Field(
        10.0, ge=0, description="Wait before a disconnected holder's locks go."
    )
    lock_sweep_interval_seconds: float = Field(
        0.5, gt=0, description="How often expired locks are looked for."
    )

    # --- documents ---------------------------------------------------------------------------
    group_commit_max_batch: int = Field(
        2048, ge=1, description="Largest number of writes in one commit."
    )
    sqlite_commit_interval_ms: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="Under load, SQLite commits at most this often: less CPU, later ACKs (0: off).",
    )
    sqlite_writer_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="Added to the SQLite writer thread's niceness (Linux): the loop wins a busy CPU.",
    )
    compaction_threshold: int = Field(
        500, ge=1, description="Stored updates that trigger a compacted snapshot."
    )
    document_idle_unload_seconds: float = Field(
        300.0, gt=0, description="Unload documents nobody has joined for this long."
    )

    # --- audit -------------------------------------------------------------------------------
    audit_queue_max: int = Field(
        100_000, ge=1, description="Audit events buffered in memory before spilling."
    )

    # --- shutdown ----------------------------------------------------------------------------
    shutdown_reconnect_after_ms: int = Field(
        1000, ge=0, description="Hint sent in SERVER_SHUTDOWN."
    )
    shutdown_timeout_seconds: float = Field(10.0, gt=0, description="Longest drain on SIGTERM.")

    # --- demo ------------------------------------------------------------------------------------
    demo_enabled: bool | None = Field(
        None, description="Serve /demo (and its dev-token route); unset = only with DEV_KEYS."
    )

    # --- logging -----------------------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level logged."
    )
    gc_pause_warn_seconds: float = Field(
        0.1, gt=0, description="Log a garbage-collector pause longer than this (all are metered)."
    )
    gc_young_threshold: int = Field(
        50_000,
        ge=100,
        description="Net allocations between young garbage collections (CPython's default is "
        "700: dozens of collections a second under load, docs/performance.md).",
    )
    gc_freeze: bool = Field(
        False,
        description="Freeze what survives each full garbage collection, so the next walks only "
        "newer objects: shorter pauses, but closed connections wait in memory for the next "
        "GC_FULL_COLLECTION_INTERVAL (docs/performance.md).",
    )
    gc_full_collection_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="With GC_FREEZE: unfreeze and collect everything this often (reclaims "
        "cycles among frozen objects; one long pause).",
    )
    event_loop_lag_probe_seconds: float = Field(
        0.5,
        gt=0,
        description="How often a timer measures the event loop's lag "
        "(collabgate_event_loop_lag_seconds).",
    )

    @field_validator("resource_types", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.lock_default_ttl_ms > self.lock_max_ttl_ms:
            raise ValueError("LOCK_DEFAULT_TTL_MS must not exceed LOCK_MAX_TTL_MS")
        if self.jwt_hs256_secret is not None and not self.jwt_allow_hs256:
            raise ValueError("JWT_HS256_SECRET is set but JWT_ALLOW_HS256 is not true")
        return self

    @property
    def database_file(self) -> Path:
        return self.sqlite_path or self.data_dir / "collabgate.sqlite3"

    @property
    def dev_keys_dir(self) -> Path:
        return self.data_dir / "dev-keys"

    @property
    def instance_name(self) -> str:
        return self.instance_id or f"{socket.gethostname()}:{self.port}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`SettingsError` naming a bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        variable = ENV_PREFIX + "_".join(location).upper() if location else "configuration"
        value = error.get("input")
        shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
        problems.append(f"{variable}: {error['msg']}{shown}")
    return "invalid configuration: " + "; ".join(problems)
