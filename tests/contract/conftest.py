"""The built-in backends under the contract kit (:mod:`memory_resources.testing`).

This directory holds no tests of its own: the kit, loaded by tests/conftest.py, collects
its suites under this conftest because it defines the ``memory_<role>`` fixtures. Each is
parametrised over the backends listed below and resolves ``<backend>_<role>`` from
``tests/fixtures/<backend>.py``; a test id reads
``tests/contract/conftest.py::<role suite>::<test>[<backend>]`` (select with ``-k``).
A backend joins a suite by adding its name here and providing that fixture
(``postgres_embedded`` is the PostgreSQL store on the embedded PostgreSQL 18, beside
``postgres`` on the machine's server: two majors; ``postgres_app`` is the store connected
as the least-privilege application role of docs/postgres.md, ``postgres_replica`` the
store reading from a streaming replica of the embedded server, ``pgvector_app`` the
pgvector index as that role, ``pgvector_halfvec`` / ``pgvector_binary`` the pgvector index
with halfvec storage / binary quantization, and ``redis_acl`` the Redis store as the ACL
user of docs/redis.md). Every factory returns a fresh, isolated store (own file / key
prefix / schema) and cleans up after the test.

``<backend>_async`` runs the same suite against the backend's async implementation (the
store the AsyncMemoryAPI uses), called through a sync view (``tests/fixtures/aio.py``).

``MEMORY_TEST_BACKENDS=sqlite,redis,...`` keeps only those backends (``make test-min`` runs
the suites on one variant per dependency that way).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

REPLICA_BACKENDS = ["postgres_replica", "postgres_replica_async"]
"""Writes on the primary, reads on a streaming replica (``tests/fixtures/postgres_replica.py``)."""

CLUSTER_BACKENDS = ["redis_cluster", "redis_cluster_acks_async", "redis_cluster_tls"]
"""The Redis store on the session's 3-master + 3-replica cluster: sync with
``replica_acks`` 0, async with every write confirmed by WAIT (``replica_acks=1``), and sync
on the TLS-only 3 + 3 cluster (server verified against a throwaway CA, ``replica_acks=1``)
(``tests/fixtures/redis.py``). Three of the six combinations, to keep the suite's time: a
cluster case costs ~3x a single-server one (each store maps the cluster)."""

SENTINEL_BACKENDS = ["redis_sentinel", "redis_sentinel_async"]
"""The Redis store on the session's Redis Sentinel topology (primary + replica + 3
sentinels), sync and async (``tests/fixtures/redis_sentinel.py``)."""

TOPOLOGIES = ("redis_cluster", "redis_sentinel")
"""Backends on a multi-server topology: their cases carry the ``topology`` marker."""

BACKENDS: dict[str, list[str]] = {
    "context_store": ["sqlite", "redis", "redis_acl", "postgres", "postgres_embedded",
                      "postgres_app", "sqlite_async", "redis_async", "postgres_async",
                      *CLUSTER_BACKENDS, *SENTINEL_BACKENDS],
    "event_log": ["sqlite", "redis", "redis_acl", "postgres", "postgres_embedded",
                  "postgres_app", "sqlite_async", "redis_async", "postgres_async",
                  *CLUSTER_BACKENDS, *SENTINEL_BACKENDS],
    "lock_manager": ["sqlite", "redis", "redis_acl", "postgres", "postgres_embedded",
                     "postgres_app", "sqlite_async", "redis_async", "postgres_async",
                     *CLUSTER_BACKENDS, *SENTINEL_BACKENDS],
    "run_history": ["sqlite", "postgres", "postgres_embedded", "postgres_app",
                    "sqlite_async", "postgres_async", *REPLICA_BACKENDS],
    "task_outputs": ["sqlite", "postgres", "postgres_embedded", "postgres_app",
                     "sqlite_async", "postgres_async", *REPLICA_BACKENDS],
    "audit_log": ["sqlite", "postgres", "postgres_embedded", "postgres_app",
                  "sqlite_async", "postgres_async", *REPLICA_BACKENDS],
    "vector_index": ["numpy", "numpy_file", "numpy_int8", "usearch", "usearch_file",
                     "pgvector", "pgvector_app", "pgvector_halfvec", "pgvector_binary",
                     "numpy_async", "usearch_async", "pgvector_async",
                     "pgvector_halfvec_async", "pgvector_binary_async"],
}

_ONLY = {name.strip() for name in os.environ.get("MEMORY_TEST_BACKENDS", "").split(",")
         if name.strip()}
if _ONLY:
    _unknown = _ONLY - {name for names in BACKENDS.values() for name in names}
    if _unknown:
        raise pytest.UsageError(f"MEMORY_TEST_BACKENDS: unknown backend(s) {sorted(_unknown)}")
    BACKENDS = {capability: [name for name in names if name in _ONLY]
                for capability, names in BACKENDS.items()}


def _params(role: str) -> list[Any]:
    return [pytest.param(name, marks=pytest.mark.topology) if name.startswith(TOPOLOGIES)
            else name for name in BACKENDS[role]]


def _resolve(request: pytest.FixtureRequest, role: str) -> Any:
    return request.getfixturevalue(f"{request.param}_{role}")


@pytest.fixture(params=_params("context_store"))
def memory_context_store(request: pytest.FixtureRequest) -> Any:
    """Each built-in ContextStore."""
    return _resolve(request, "context_store")


@pytest.fixture(params=_params("event_log"))
def memory_event_log(request: pytest.FixtureRequest) -> Any:
    """Each built-in EventLog."""
    return _resolve(request, "event_log")


@pytest.fixture(params=_params("lock_manager"))
def memory_lock_manager(request: pytest.FixtureRequest) -> Any:
    """Each built-in LockManager."""
    return _resolve(request, "lock_manager")


@pytest.fixture(params=_params("run_history"))
def memory_run_history(request: pytest.FixtureRequest) -> Any:
    """Each built-in RunHistory."""
    return _resolve(request, "run_history")


@pytest.fixture(params=_params("task_outputs"))
def memory_task_outputs(request: pytest.FixtureRequest) -> Any:
    """Each built-in TaskOutputs."""
    return _resolve(request, "task_outputs")


@pytest.fixture(params=_params("audit_log"))
def memory_audit_log(request: pytest.FixtureRequest) -> Any:
    """Each built-in audited store."""
    return _resolve(request, "audit_log")


@pytest.fixture(params=_params("vector_index"))
def memory_vector_index(request: pytest.FixtureRequest) -> Any:
    """Each built-in vector backend, as a factory of indexes."""
    return _resolve(request, "vector_index")
