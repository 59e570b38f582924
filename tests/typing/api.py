"""Type-checked use of the public MemoryAPI surface (run by mypy --strict, never executed).

If a public signature changes incompatibly, mypy fails on this file.
"""

from __future__ import annotations

from memory_resources import (
    ContextHandle,
    Lock,
    MemoryAPI,
    configure_memory_api,
    get_memory_api,
    reset_memory_api,
    set_memory_api,
)
from memory_resources.records import (
    AuditRecord,
    ContextRecord,
    EventRecord,
    FlowRunRecord,
    JSONDict,
    TaskOutputRecord,
    VectorMatch,
)


def spec_surface(api: MemoryAPI) -> None:
    """Every method of the spec's API Reference with its documented return type."""
    connected: bool = api.connect()
    ok: bool = api.set_context("ctx", {"user_id": "u"}, ttl=3600)
    context: ContextRecord | None = api.get_context("ctx")
    if context is not None:
        data: JSONDict = context["data"]
        version: int = context["version"]
    ok = api.append_event("ctx", {"type": "login"})
    events: list[EventRecord] = api.get_events("ctx", since=None, limit=10)
    cleared: bool = api.clear_context("ctx")
    ok = api.write_flow_run_history("flow", "run", {"status": "completed", "duration": 1})
    history: list[FlowRunRecord] = api.read_flow_run_history("flow", run_id=None, limit=100,
                                                             status="completed")
    history = api.read_flow_run_history(None, flow_name="agent", until=None)
    ok = api.write_task_output("task", {"result": 1}, metadata={"m": 1})
    output: TaskOutputRecord | None = api.read_task_output("task")
    versions: list[TaskOutputRecord] = api.list_task_outputs("task", limit=5)
    audit: list[AuditRecord] = api.read_audit_log(operation="context.set", limit=10)
    ok = api.index_embedding("doc", [0.1] * 768, {"type": "document"})
    matches: list[VectorMatch] = api.query_embeddings([0.1] * 768, top_k=5,
                                                      filter_metadata={"type": "document"})
    score: float = matches[0]["score"]
    deleted: bool = api.delete_embedding("doc")
    with api.acquire_lock("critical", timeout=10, blocking_timeout=5) as lock:
        token: int | None = lock.fencing_token
    health: JSONDict = api.health_check()
    stats: JSONDict = api.get_memory_stats()
    api.disconnect()
    del connected, ok, data, version, events, cleared, history, output, versions, audit
    del score, deleted, token, health, stats


def injection_surface(api: MemoryAPI) -> None:
    """The context handle and the lock factory."""
    handle: ContextHandle = api.context("session", ttl=60)
    record: ContextRecord = handle.set({"a": 1}, ttl=None)
    merged: JSONDict = handle.update(step=2)
    event: EventRecord = handle.append_event({"type": "x"})
    events: list[EventRecord] = handle.events(since=event["id"], limit=5)
    current: JSONDict = handle.data
    gone: bool = handle.clear()
    lock: Lock = api.lock("resource", timeout=5, blocking_timeout=None, auto_extend=True)
    with lock:
        lock.extend()
    del record, merged, events, current, gone


def construction() -> MemoryAPI:
    """The constructors and the process-wide default."""
    embedded = MemoryAPI()
    composed = MemoryAPI(
        redis_config={"host": "localhost", "port": 6379, "key_prefix": "agent_framework:"},
        postgres_config={"host": "localhost", "database": "agent_framework"},
        vector_config={"backend": "placeholder", "dimension": 768},
        embedded_config={"path": "/tmp/memory.db"},
    )
    with MemoryAPI.from_stores(vectors=None, owns_stores=False) as same:
        same.set_context("x", {})
    configured: MemoryAPI = configure_memory_api(vector_config={"dimension": 3})
    installed: MemoryAPI = set_memory_api(composed)
    current: MemoryAPI = get_memory_api()
    reset_memory_api()
    del configured, installed, current
    return embedded


def extension() -> MemoryAPI:
    """Backends by name for any role, a backend declared for the registry, typed stores."""
    from typing import Any

    from pydantic import BaseModel

    from memory_resources.api_async import AsyncMemoryAPI
    from memory_resources.backends import (
        Backend,
        BuildContext,
        available_backends,
        resolve_backend,
    )
    from memory_resources.config import EmbeddedConfig
    from memory_resources.protocols import ContextStore, EventLog
    from memory_resources.stores.sqlite import SQLiteStore

    class Options(BaseModel):
        path: str

    def build(options: Options, context: BuildContext) -> SQLiteStore:
        return SQLiteStore(EmbeddedConfig(path=options.path), clock=context.clock)

    backend = Backend("mine", frozenset({"context", "events"}), build, Options)
    names: list[str] = available_backends("context")
    redis: Backend = resolve_backend("redis", "context")
    api = MemoryAPI(
        redis_config={"url": "redis://localhost:6379/0"},
        backends={"context": {"backend": "mine", "path": "/tmp/c.db"}, "locks": "sqlite"},
    )
    store: ContextStore = SQLiteStore()
    events: EventLog = SQLiteStore()
    composed = MemoryAPI.from_stores(context=store, events=events, owns_stores=True)
    aio = AsyncMemoryAPI(backends={"vectors": {"backend": "numpy", "dimension": 4}})
    raw: Any = api.store("context")
    del backend, names, redis, composed, aio, raw
    return api
