"""The specification's examples, end to end, on the embedded default (no server needed).

Run it with ``python examples/memory_example.py``. Without configuration dicts the API
stores everything in one SQLite file under ``MEMORY_RESOURCES_HOME`` (default
``~/.memory_resources``) and searches vectors with numpy. Give ``redis_config`` /
``postgres_config`` / ``vector_config`` (as in the specification's "Basic Usage") to run
the same calls on Redis, PostgreSQL and pgvector.

Covered, in the specification's order: context management, flow-run history, task outputs,
vector operations, distributed locking, error handling, global API usage, health and
statistics.
"""

from __future__ import annotations

import logging
import uuid

from memory_resources import (
    LockNotAcquiredError,
    MemoryAPI,
    MemoryValidationError,
    configure_memory_api,
    get_memory_api,
    reset_memory_api,
)


def basic_usage(memory_api: MemoryAPI, session: str) -> None:
    """The specification's "Basic Usage" block, call for call."""
    context_data = {"user_id": "user_123", "session_id": "session_456"}
    memory_api.set_context(session, context_data, ttl=3600)
    retrieved_context = memory_api.get_context(session)
    assert retrieved_context is not None
    print(f"User ID: {retrieved_context['data']['user_id']}")

    memory_api.append_event(session, {"type": "user_action", "action": "login"})
    print(f"events: {[e['data']['action'] for e in memory_api.get_events(session)]}")

    memory_api.write_flow_run_history("flow_001", "run_001",
                                      {"status": "completed", "duration": 120})
    runs = memory_api.read_flow_run_history("flow_001", limit=5)
    print(f"flow_001 runs: {[run['run_id'] for run in runs]}")

    memory_api.write_task_output("task_001", {"result": "success", "data": [1, 2, 3]},
                                 metadata={"attempt": 1})
    output = memory_api.read_task_output("task_001")
    assert output is not None
    print(f"task_001 output: {output['output']}")

    embedding = [0.1, 0.2, 0.3] * 256  # 768 dimensions
    memory_api.index_embedding("doc_001", embedding, {"type": "document"})
    memory_api.index_embedding("doc_002", [0.3, 0.2, 0.1] * 256, {"type": "note"})
    similar_docs = memory_api.query_embeddings(embedding, top_k=5)
    print(f"similar: {[(d['id'], round(d['score'], 3)) for d in similar_docs]}")
    documents = memory_api.query_embeddings(embedding, top_k=5,
                                            filter_metadata={"type": "document"})
    print(f"documents only: {[d['id'] for d in documents]}")
    memory_api.delete_embedding("doc_002")

    with memory_api.acquire_lock("critical_section", timeout=10, blocking_timeout=5):
        print("in the critical section")

    memory_api.clear_context(session)
    assert memory_api.get_context(session) is None


def error_handling(memory_api: MemoryAPI) -> None:
    """Bad input is a typed error naming the field; a held lock times out typed too."""
    try:
        memory_api.set_context("", {"a": 1})
    except MemoryValidationError as exc:
        print(f"refused: {exc.field} - {exc}")
    try:
        memory_api.query_embeddings([0.1, 0.2], top_k=3)
    except MemoryValidationError as exc:
        print(f"refused: {exc.field} - {exc}")
    with memory_api.acquire_lock("busy", timeout=10):
        try:
            with memory_api.acquire_lock("busy", blocking_timeout=0.2):
                pass
        except LockNotAcquiredError as exc:
            print(f"lock not acquired: {exc.lock_name}")


def global_api() -> None:
    """One API per process, configured once and reachable anywhere."""
    configure_memory_api()
    memory_api = get_memory_api()
    memory_api.set_context("global-example", {"ready": True})
    assert get_memory_api() is memory_api
    memory_api.clear_context("global-example")
    reset_memory_api()


def monitoring(memory_api: MemoryAPI) -> None:
    """The specification's "Monitoring" block."""
    health = memory_api.health_check()
    print(f"health: {health['overall_status']}")
    stats = memory_api.get_memory_stats()
    print(f"Redis memory usage: {stats['adapters']['redis']['used_memory']}")
    print(f"PostgreSQL connections: {stats['adapters']['postgres']['active_connections']}")
    print(f"Vector embeddings: {stats['adapters']['vector']['total_embeddings']}")


def main() -> None:
    """Run every example on the embedded default."""
    logging.basicConfig(level=logging.WARNING)
    session = f"user_session_{uuid.uuid4().hex[:8]}"
    memory_api = MemoryAPI()
    if memory_api.connect():
        print("Connected to all memory adapters")
        try:
            basic_usage(memory_api, session)
            error_handling(memory_api)
            monitoring(memory_api)
        finally:
            memory_api.disconnect()
    global_api()
    print("done")


if __name__ == "__main__":
    main()
