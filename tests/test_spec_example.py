"""The spec's "Basic Usage" example runs unchanged (import path adapted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from psycopg2.extensions import parse_dsn

from memory_resources import default

# The spec's "### 3. Basic Usage" block, verbatim except ``from memory.api import MemoryAPI``.
SPEC_BASIC_USAGE = '''
from memory_resources import MemoryAPI

# Initialize Memory API
memory_api = MemoryAPI(
    redis_config={
        "host": "localhost",
        "port": 6379,
        "key_prefix": "agent_framework:"
    },
    postgres_config={
        "host": "localhost",
        "database": "agent_framework",
        "user": "postgres",
        "password": "password"
    },
    vector_config={
        "backend": "placeholder",  # or "pinecone", "weaviate", etc.
        "dimension": 768
    }
)

# Connect to all adapters
if memory_api.connect():
    print("Connected to all memory adapters")

    # Store context
    context_data = {"user_id": "user_123", "session_id": "session_456"}
    memory_api.set_context("user_session_123", context_data, ttl=3600)

    # Retrieve context
    retrieved_context = memory_api.get_context("user_session_123")
    print(f"User ID: {retrieved_context['data']['user_id']}")

    # Append events
    event = {"type": "user_action", "action": "login"}
    memory_api.append_event("user_session_123", event)

    # Store flow run history
    flow_data = {"status": "completed", "duration": 120}
    memory_api.write_flow_run_history("flow_001", "run_001", flow_data)

    # Store task output
    task_output = {"result": "success", "data": [1, 2, 3]}
    memory_api.write_task_output("task_001", task_output)

    # Index embeddings
    embedding = [0.1, 0.2, 0.3] * 256  # 768 dimensions
    memory_api.index_embedding("doc_001", embedding, {"type": "document"})

    # Query similar embeddings
    similar_docs = memory_api.query_embeddings(embedding, top_k=5)

    # Distributed locking
    with memory_api.acquire_lock("critical_section"):
        # Perform critical operations
        pass

    # Clean up
    memory_api.clear_context("user_session_123")
    memory_api.disconnect()
'''

SPEC_CONSTRUCTOR = SPEC_BASIC_USAGE[
    SPEC_BASIC_USAGE.index("memory_api = MemoryAPI("):SPEC_BASIC_USAGE.index("# Connect")
]


def run_example(source: str) -> dict[str, Any]:
    """Execute the example as a script and return its globals."""
    namespace: dict[str, Any] = {"__name__": "spec_example"}
    exec(compile(source, "spec_basic_usage.py", "exec"), namespace)
    return namespace


def check_results(namespace: dict[str, Any], printed: str) -> None:
    """What the example printed and left behind in the store."""
    assert printed.splitlines() == ["Connected to all memory adapters", "User ID: user_123"]
    memory_api = namespace["memory_api"]
    similar = namespace["similar_docs"]
    assert similar[0]["id"] == "doc_001"
    assert similar[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert similar[0]["metadata"] == {"type": "document"}
    # disconnect() was the last call; the API reconnects lazily for the checks below.
    assert memory_api.get_context("user_session_123") is None
    assert memory_api.get_events("user_session_123") == []
    history = memory_api.read_flow_run_history("flow_001", "run_001")
    assert [(h["status"], h["duration"]) for h in history] == [("completed", 120.0)]
    assert history[0]["data"] == {"status": "completed", "duration": 120}
    output = memory_api.read_task_output("task_001")
    assert output["output"] == {"result": "success", "data": [1, 2, 3]}
    memory_api.disconnect()


def test_basic_usage_on_the_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example, with its constructor pointed at the embedded default, runs and prints."""
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(tmp_path))
    default.reset_memory_api()
    source = SPEC_BASIC_USAGE.replace(SPEC_CONSTRUCTOR, "memory_api = MemoryAPI()\n\n")
    assert source != SPEC_BASIC_USAGE
    namespace = run_example(source)
    check_results(namespace, capsys.readouterr().out)
    assert (tmp_path / "memory.db").exists()


def test_basic_usage_with_the_spec_config_dicts_on_real_servers(
    redis_url: str, redis_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The example with its three config dicts (same keys) pointed at the test Redis and
    PostgreSQL runs and prints, and its writes land on those servers."""
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(tmp_path))
    redis_url_parts = urlsplit(redis_url)
    pg = parse_dsn(postgres_dsn)
    constructor = SPEC_CONSTRUCTOR
    for old, new in [
        ('"host": "localhost",\n        "port": 6379,',
         f'"host": {redis_url_parts.hostname!r},\n        "port": {redis_url_parts.port},'
         f'\n        "db": {int(redis_url_parts.path.strip("/") or 0)},'),
        ('"key_prefix": "agent_framework:"', f'"key_prefix": {redis_prefix!r}'),
        ('"host": "localhost",\n        "database": "agent_framework",',
         f'"host": {pg.get("host", "localhost")!r},\n        "port": {int(pg.get("port", 5432))},'
         f'\n        "database": {pg["dbname"]!r},\n        "schema": {pg_schema!r},'),
        ('"user": "postgres"', f'"user": {pg.get("user", "postgres")!r}'),
        ('"password": "password"', f'"password": {pg.get("password")!r}'),
    ]:
        assert old in constructor, old
        constructor = constructor.replace(old, new)
    source = SPEC_BASIC_USAGE.replace(SPEC_CONSTRUCTOR, constructor)
    namespace = run_example(source)
    memory_api = namespace["memory_api"]
    assert memory_api.backends["context"] == "redis"
    assert memory_api.backends["history"] == "postgres"
    check_results(namespace, capsys.readouterr().out)
    with redis.Redis.from_url(redis_url) as client:
        left = list(client.scan_iter(match="*" + redis_prefix.rstrip(":") + "*"))
    assert left, "the lock's fencing counter stays, under the configured key_prefix"
    assert all(key.decode().startswith(redis_prefix) for key in left)
