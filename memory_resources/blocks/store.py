"""The composite ``MemoryStore`` block: nested backend blocks, capture options, injection.

A ``MemoryStore`` is configuration only (it pickles and saves like any block). Its live
part, the :class:`~memory_resources.api.MemoryAPI` and the capture writer, is built on first
use once per process per configuration (two instances with the same configuration share it)
and closed at process exit.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from prefect.blocks.core import Block
from prefect.types import SecretDict
from pydantic import (
    BaseModel,
    Field,
    HttpUrl,
    PrivateAttr,
    SecretBytes,
    SecretStr,
    model_validator,
)

from ..config import URL_FIELDS, EmbeddedConfig
from ..validation import MAX_TTL_SECONDS
from . import form
from .base import DeploySafeLoad
from .form import FormLayout
from .postgres import PostgresMemory
from .redis import RedisMemory
from .store_async import AsyncHandles
from .vector import VectorMemory

if TYPE_CHECKING:
    from ..api import MemoryAPI
    from ..capture.outbox import Outbox, OutboxTarget
    from ..capture.writer import CaptureStores, CaptureWriter
    from ..handles import ContextHandle
    from ..locking import Lock

F = TypeVar("F")

_PATH_ENV = ("MEMORY_RESOURCES_HOME", "PREFECT_HOME", "MEMORY_RESOURCES_OUTBOX")
"""Environment variables the default file paths depend on."""

DEFAULT_MAX_PARAM_BYTES = 64 * 1024
DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024
DOCS_URL = "https://github.com/memory-resources/memory-resources/blob/main/docs/prefect.md"
LOGO_URL = (  # Prefect's own block logo for local files (the embedded default), commit-pinned
    "https://raw.githubusercontent.com/PrefectHQ/prefect/"
    "420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/filesystem.png"
)


class _Runtime:
    """The live objects of one configuration in this process."""

    def __init__(self, api: MemoryAPI) -> None:
        self.api = api


_RUNTIMES: dict[str, _Runtime] = {}
_WRITERS: dict[str, CaptureWriter] = {}
_RUNTIMES_LOCK = threading.RLock()
_ATEXIT = False


def close_all() -> None:
    """Disconnect every MemoryAPI the blocks built in this process (run at exit)."""
    with _RUNTIMES_LOCK:
        runtimes = list(_RUNTIMES.values())
        writers = list(_WRITERS.values())
        _RUNTIMES.clear()
        _WRITERS.clear()
    for writer in writers:
        writer.outbox.close()
    for runtime in runtimes:
        with contextlib.suppress(Exception):  # exit must go on
            runtime.api.disconnect()


def _plain(value: Any) -> Any:
    """JSON-able form of a config value with secrets revealed (for fingerprints only)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, SecretBytes):
        return value.get_secret_value().decode("latin-1")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    return value


def _has_secret(value: Any, key: str = "") -> bool:
    """True if a config value holds a secret: a Secret type, a string with credentials (a
    URL password, ``password=...``), or a non-empty plain value under a secret field name
    (other than a ``dsn``/``url`` without credentials)."""
    from ..capture.masking import mask_text, secret_name

    if isinstance(value, SecretStr) and key in URL_FIELDS:  # a URL/DSN: secret if it has one
        return _has_secret(value.get_secret_value(), key)
    if isinstance(value, (SecretStr, SecretBytes)):
        return True
    if isinstance(value, str):
        if mask_text(value) != value:
            return True
        return bool(value) and secret_name(key) and not key.endswith(("dsn", "url"))
    if isinstance(value, dict):
        return any(_has_secret(v, str(k)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_secret(v, key) for v in value)
    return False


_NESTED: dict[str, type[Block]] = {
    "redis": RedisMemory, "postgres": PostgresMemory, "vector": VectorMemory,
}


def _strip_nested_slugs(value: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``block_type_slug`` Prefect adds to nested block data when it names the
    expected block type (the backend configs forbid unknown keys). An empty dict is an
    unset nested block: the Prefect UI's create form saves ``{}`` for a block left empty,
    which must mean the embedded default, not that backend on localhost."""
    cleaned = dict(value)
    for key, block_class in _NESTED.items():
        nested = cleaned.get(key)
        if isinstance(nested, dict) and not nested:
            cleaned[key] = None
        elif isinstance(nested, dict) and (
            nested.get("block_type_slug") == block_class.get_block_type_slug()
        ):
            cleaned[key] = {k: v for k, v in nested.items() if k != "block_type_slug"}
    return cleaned


class MemoryStore(FormLayout, DeploySafeLoad, AsyncHandles, Block):  # type: ignore[misc]
    """Durable memory for agent flows: Redis, PostgreSQL and vector blocks in one place.

    Each nested block is optional; a part left empty runs on the embedded default (one
    SQLite file plus an exact numpy vector index), so ``MemoryStore()`` needs no server.
    Declare it once on a flow with ``remember`` and every run writes its history at each
    state change, and the return values of its tasks, to the store; inside the flow use
    ``.context(session_id)`` and ``.lock(name)`` without passing connections around.

    Examples:
        Load a saved store and capture a flow's runs:
        ```python
        from prefect import flow, task
        from memory_resources.blocks import MemoryStore
        from memory_resources import remember

        memory = MemoryStore.load("BLOCK_NAME")

        @task
        def plan(goal: str):
            return {"goal": goal, "steps": ["search", "answer"]}

        @remember(memory)
        @flow
        def agent(session_id: str, goal: str):
            ctx = memory.context(session_id)
            ctx.append_event({"type": "goal", "goal": goal})
            with memory.lock(f"session:{session_id}"):
                return plan(goal)
        ```
    """

    _block_type_name = "Memory Store"
    _block_type_slug = "memory-store"
    _logo_url = HttpUrl(LOGO_URL)
    _documentation_url = HttpUrl(DOCS_URL)
    _description = (
        "Durable memory for AI-agent flows: context with TTL, events, locks, flow-run "
        "history, task outputs and embeddings, on Redis, PostgreSQL and a vector index "
        "(each optional; embedded SQLite by default). Captures flow runs automatically."
    )
    _form = form.MEMORY_STORE

    redis: RedisMemory | None = Field(
        default=None,
        description="Redis block for context, events and locks (empty: embedded default).",
    )
    postgres: PostgresMemory | None = Field(
        default=None,
        description="PostgreSQL block for run history, task outputs and audit "
        "(empty: embedded default).",
    )
    vector: VectorMemory | None = Field(
        default=None,
        description="Vector index block for embeddings (empty: exact numpy index).",
    )
    backends: SecretDict | None = Field(
        default=None,
        description='Any registered backend for any role, e.g. {"context": {"backend": '
        '"mongo", "url": "..."}}: a backend name (memory_resources.backends entry point '
        "group or built-in) and its options; a role named here wins over the blocks above "
        "(empty: none). Secret: masked in the UI.",
    )
    embedded_path: str | None = Field(
        default=None,
        description="SQLite file of the embedded default "
        "(empty: $MEMORY_RESOURCES_HOME/memory.db).",
    )
    context_ttl: int | None = Field(
        default=None, gt=0, le=MAX_TTL_SECONDS,
        description="Seconds to live of contexts written through .context() "
        "(empty: no expiry).",
    )
    capture_task_outputs: bool = Field(
        default=True,
        description="Store the return value of each task run of a captured flow.",
    )
    max_param_bytes: int | None = Field(
        default=DEFAULT_MAX_PARAM_BYTES, gt=0,
        description="Largest captured flow parameters in bytes of JSON; larger ones are "
        "truncated (empty: no limit).",
    )
    max_output_bytes: int | None = Field(
        default=DEFAULT_MAX_OUTPUT_BYTES, gt=0,
        description="Largest captured task output in bytes of JSON; larger ones are "
        "truncated (empty: no limit).",
    )
    outbox_path: str | None = Field(
        default=None,
        description="SQLite file keeping records a hook could not write "
        "(empty: $MEMORY_RESOURCES_HOME/outbox.db).",
    )

    _identity_cache: Any = PrivateAttr(default=None)
    """(environment key, fingerprint, outbox target): computed once, reset when a field is
    assigned. Changing a nested block in place is not seen: assign the field again."""

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_") or name.startswith("_block_document"):
            self._identity_cache = None  # a field, or the saved name used in the label

    def _identity(self) -> tuple[str, OutboxTarget]:
        env = tuple(os.environ.get(v) for v in _PATH_ENV)
        cached = self._identity_cache
        if cached is not None and cached[0] == env:
            return cached[1], cached[2]
        fingerprint = self._compute_fingerprint()
        target = self._compute_outbox_target(fingerprint)
        self._identity_cache = (env, fingerprint, target)
        return fingerprint, target

    @model_validator(mode="wrap")
    @classmethod
    def _accept_block_name(cls, value: Any, handler: Callable[[Any], Any]) -> Any:
        """A bare string is the name of a saved block: load it (Prefect does not)."""
        if isinstance(value, str):
            name = value.split("/", 1)[1] if value.startswith(f"{cls._block_type_slug}/") \
                else value
            loader: Any = cls.load  # async_dispatch: _sync=True forces the sync path
            return loader(name, _sync=True)
        if isinstance(value, dict):
            value = _strip_nested_slugs(value)
        return handler(value)

    # -- configuration ---------------------------------------------------------------------

    def backend_configs(self) -> dict[str, Any]:
        """The backend configs this block composes (None: embedded default for that part)."""
        return {
            "redis": self.redis.to_config() if self.redis is not None else None,
            "postgres": self.postgres.to_config() if self.postgres is not None else None,
            "vector": self.vector.to_config() if self.vector is not None else None,
            "embedded": EmbeddedConfig.model_validate({"path": str(
                EmbeddedConfig.model_validate({"path": self.embedded_path}).resolved_path()
            )}),
            "backends": (self.backends.get_secret_value() or None
                         if self.backends is not None else None),
        }

    def fingerprint(self) -> str:
        """Identifies the stores this block writes to (secrets included, never shown)."""
        return self._identity()[0]

    def _compute_fingerprint(self) -> str:
        plain = {k: _plain(v) for k, v in self.backend_configs().items()}
        text = json.dumps(plain, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def label(self) -> str:
        """A readable name of this store: the block name, else its backends."""
        if self._block_document_name:
            return f"{self._block_type_slug}/{self._block_document_name}"
        configs = self.backend_configs()
        parts = []
        if configs["redis"] is not None:
            redis = configs["redis"]
            parts.append(f"redis={redis.host}:{redis.port}/{redis.db}" if not redis.url
                         else "redis=url")
        if configs["postgres"] is not None:
            pg = configs["postgres"]
            parts.append(f"postgres={pg.host}:{pg.port}/{pg.database}" if not pg.dsn
                         else "postgres=dsn")
        if configs["vector"] is not None:
            parts.append(f"vector={configs['vector'].backend}")
        for role, spec in sorted((configs["backends"] or {}).items()):
            name = spec if isinstance(spec, str) else (spec or {}).get("backend")
            parts.append(f"{role}={name}")
        parts.append(f"embedded={configs['embedded'].resolved_path()}")
        return " ".join(parts)

    # -- live objects ----------------------------------------------------------------------

    def _runtime(self) -> _Runtime:
        global _ATEXIT
        key = self.fingerprint()
        runtime = _RUNTIMES.get(key)
        if runtime is not None:
            return runtime
        with _RUNTIMES_LOCK:
            runtime = _RUNTIMES.get(key)
            if runtime is None:
                runtime = self._build_runtime()
                _RUNTIMES[key] = runtime
                if not _ATEXIT:
                    atexit.register(close_all)
                    _ATEXIT = True
        return runtime

    def _build_runtime(self) -> _Runtime:
        from ..api import MemoryAPI
        from ..api_build import compose_from_configs
        from ..clock import SYSTEM_CLOCK

        configs = self.backend_configs()
        composition = compose_from_configs(
            configs["redis"], configs["postgres"], configs["vector"], configs["embedded"],
            SYSTEM_CLOCK, configs["backends"],
        )
        api = MemoryAPI.from_stores(**composition.roles, owns_stores=True)
        return _Runtime(api)

    @property
    def api(self) -> MemoryAPI:
        """The MemoryAPI of this configuration (built once per process, connected lazily)."""
        return self._runtime().api

    def context(self, session_id: str, *, ttl: int | None = None) -> ContextHandle:
        """A context handle bound to ``session_id``; ``ttl`` defaults to ``context_ttl``."""
        return self.api.context(session_id, ttl=ttl if ttl is not None else self.context_ttl)

    def lock(self, name: str, *, timeout: float = 10, blocking_timeout: float | None = 5,
             auto_extend: bool = False) -> Lock:
        """A lease lock on ``name`` (use as ``with memory.lock(name) as lock:``)."""
        return self.api.lock(name, timeout=timeout, blocking_timeout=blocking_timeout,
                             auto_extend=auto_extend)

    def capture_writer(self, outbox: Outbox | None = None,
                       target: OutboxTarget | None = None) -> CaptureWriter:
        """The writer the capture hooks use (store first, durable outbox on failure).

        One per process per configuration and outbox file; ``outbox``/``target`` let the
        replay command drain records kept under another file or an older configuration.
        """
        from ..capture.outbox import Outbox as OutboxFile
        from ..capture.outbox import default_outbox_path
        from ..capture.writer import CaptureWriter

        if outbox is None:
            outbox_key = str(Path(self.outbox_path or default_outbox_path()).expanduser())
        else:
            outbox_key = str(outbox.path)
        target = target or self.outbox_target()
        key = f"{self.fingerprint()}#{outbox_key}#{target.target}"  # all cached: cheap
        writer = _WRITERS.get(key)
        if writer is None:
            with _RUNTIMES_LOCK:
                writer = _WRITERS.get(key)
                if writer is None:
                    # the stores are built on the writer's first write, inside its fallback
                    writer = CaptureWriter(self._capture_stores, outbox or OutboxFile(outbox_key),
                                           target)
                    _WRITERS[key] = writer
        return writer

    def _capture_stores(self) -> CaptureStores:
        from ..capture.writer import CaptureStores

        api = self._runtime().api  # connected through the API, which tracks the connection
        return CaptureStores(history=api.store("history"), outputs=api.store("outputs"))

    def outbox_target(self) -> OutboxTarget:
        """How ``memory-resources outbox replay`` finds this store again."""
        return self._identity()[1]

    def _compute_outbox_target(self, fingerprint: str) -> OutboxTarget:
        from ..capture.outbox import OutboxTarget

        config = None
        configs = self.backend_configs()
        raw = {k: v.model_dump(by_alias=True) if isinstance(v, BaseModel) else v
               for k, v in configs.items()}
        if not _has_secret(raw):
            config = self.model_dump(
                include={"embedded_path", "context_ttl", "capture_task_outputs",
                         "max_param_bytes", "max_output_bytes", "outbox_path"})
            config["backends"] = {k: _plain(v) for k, v in raw.items()}
        return OutboxTarget(fingerprint, self.label(), self._block_document_name, config)

    def close(self) -> None:
        """Disconnect this configuration's MemoryAPI now (it is rebuilt on next use)."""
        key = self.fingerprint()
        with _RUNTIMES_LOCK:
            runtime = _RUNTIMES.pop(key, None)
            writers = [_WRITERS.pop(k) for k in list(_WRITERS) if k.startswith(key + "#")]
        for writer in writers:
            writer.outbox.close()
        if runtime is not None:
            runtime.api.disconnect()

    # -- declaration -----------------------------------------------------------------------

    def capture(self, flow: F, **options: Any) -> F:
        """Attach the capture hooks to ``flow`` (same as ``remember(self, **options)(flow)``)."""
        from ..capture.declare import declarers

        return declarers().remember(self, **options)(flow)  # type: ignore[no-any-return]

    def task(self, fn: Any = None, /, **task_options: Any) -> Any:
        """A drop-in ``@task`` whose every run's return value is stored in this memory."""
        from ..capture.declare import declarers

        return declarers().remembered_task(self, fn, **task_options)


__all__ = ["MemoryStore", "close_all"]
