"""Test configuration shared by every suite.

Service fixtures (Redis, PostgreSQL, pgvector) live in ``tests/fixtures/services.py``;
per-backend store factories in ``tests/fixtures/<backend>.py``; the contract kit
(:mod:`memory_resources.testing`) runs its suites under tests/contract/conftest.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

pytest_plugins = [
    "memory_resources.testing",  # first: registered before a fixture module imports it
    "tests.fixtures.services",
    "tests.fixtures.sqlite",
    "tests.fixtures.vector",
    "tests.fixtures.redis",
    "tests.fixtures.redis_sentinel",
    "tests.fixtures.postgres",
    "tests.fixtures.postgres_replica",
    "tests.fixtures.prefect",
    "tests.fixtures.prefect_server",
    "tests.fixtures.pgvector",
    "tests.fixtures.aio",
    "tests.fixtures.plugins",
]
