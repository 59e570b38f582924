"""An example backend: a ContextStore kept in a dict, optionally saved to a JSON file.

Small on purpose: docs/extending.md walks through it. It implements the ContextStore and
Lifecycle Protocols of :mod:`memory_resources.protocols` with the library's own helpers
(validation, codec, batch checks, clock), so it raises the same typed errors as the
built-in stores, and it passes the contract kit (tests/extending/conftest.py runs it).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from memory_resources.backends import Backend, BuildContext
from memory_resources.batching import context_pairs, id_list, prepare_each
from memory_resources.clock import SYSTEM_CLOCK, Clock, utc_iso
from memory_resources.codec import DEFAULT_MAX_PAYLOAD_BYTES, decode, encode
from memory_resources.errors import BackendUnavailableError, CorruptRecordError
from memory_resources.records import ContextRecord, HealthReport, JSONDict
from memory_resources.validation import require_dict, require_id, require_ttl

Row = dict[str, Any]
"""A stored context: encoded ``payload``, timestamps, ``version``, ``ttl``, ``expires``."""


class DictContextStore:
    """Contexts in a dict; with ``path``, saved to that JSON file after every write."""

    backend_name = "example"

    def __init__(self, path: str | Path | None = None, *, clock: Clock = SYSTEM_CLOCK,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self.max_payload_bytes = max_payload_bytes
        self._rows: dict[str, Row] = {}
        self._lock = threading.Lock()
        self._loaded = False

    # -- Lifecycle -------------------------------------------------------------------------

    def connect(self) -> None:
        """Load the file once (idempotent); a missing file is an empty store."""
        with self._lock:
            self._load()

    def close(self) -> None:
        """Nothing to release: every write is already saved."""

    def health_check(self) -> HealthReport:
        """Healthy when the file (if any) can be read."""
        try:
            self.connect()
        except (BackendUnavailableError, CorruptRecordError) as exc:
            return {"status": "unhealthy", "backend": self.backend_name, "error": str(exc)}
        return {"status": "healthy", "backend": self.backend_name, "latency_ms": 0.0}

    def stats(self) -> JSONDict:
        """How many contexts are stored (expired ones included until next touched)."""
        with self._lock:
            return {"contexts": len(self._rows), "persisted": self.path is not None}

    # -- ContextStore ----------------------------------------------------------------------

    def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                    ) -> ContextRecord:
        """Store ``data`` under ``context_id`` (version + 1); ``ttl`` seconds or None."""
        prepared = self._prepare(context_id, data, ttl)
        return self._write_all([prepared])[0]

    def get_context(self, context_id: str) -> ContextRecord | None:
        """The stored context, or None when absent or expired."""
        return self._read([require_id(context_id, "context_id")])[0]

    def clear_context(self, context_id: str) -> bool:
        """Remove the context; True if there was one."""
        context_id = require_id(context_id, "context_id")
        with self._lock:
            self._load()
            if self._live(context_id, self.clock.time()) is None:
                return False
            before = dict(self._rows)
            del self._rows[context_id]
            self._save(before)
            return True

    def set_contexts(self, items: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
                     ttl: int | None = None) -> list[ContextRecord]:
        """:meth:`set_context` for many contexts, all validated first, then all or none."""
        pairs = context_pairs(items)
        require_ttl(ttl)
        prepared = prepare_each(pairs, lambda pair: self._prepare(pair[0], pair[1], ttl),
                                "items")
        return self._write_all(prepared) if prepared else []

    def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """:meth:`get_context` for many ids, in order."""
        return self._read(id_list(context_ids, "context_ids"))

    # -- internals -------------------------------------------------------------------------

    def _read(self, ids: list[str]) -> list[ContextRecord | None]:
        with self._lock:
            self._load()
            now = self.clock.time()
            rows = [(cid, self._live(cid, now)) for cid in ids]
            return [self._record(cid, row) if row else None for cid, row in rows]

    def _prepare(self, context_id: Any, data: Any, ttl: Any) -> tuple[str, str, int | None]:
        """Validate one write before anything changes; the codec names bad values."""
        context_id = require_id(context_id, "context_id")
        payload = encode(require_dict(data, "data"), field="data",
                         max_bytes=self.max_payload_bytes)
        return context_id, payload, require_ttl(ttl)

    def _write_all(self, prepared: list[tuple[str, str, int | None]]) -> list[ContextRecord]:
        with self._lock:
            self._load()
            before, now = dict(self._rows), self.clock.time()
            stamp = utc_iso(now)
            records = []
            for context_id, payload, ttl in prepared:
                old = self._live(context_id, now)
                row: Row = {"payload": payload, "updated_at": stamp, "ttl": ttl,
                            "created_at": old["created_at"] if old else stamp,
                            "version": old["version"] + 1 if old else 1,
                            "expires": now + ttl if ttl is not None else None}
                self._rows[context_id] = row
                records.append(self._record(context_id, row))
            self._save(before)
            return records

    def _live(self, context_id: str, now: float) -> Row | None:
        """The row of ``context_id`` unless it expired (an expired row is dropped)."""
        row = self._rows.get(context_id)
        if row is not None and row["expires"] is not None and row["expires"] <= now:
            del self._rows[context_id]
            return None
        return row

    @staticmethod
    def _record(context_id: str, row: Row) -> ContextRecord:
        expires = row["expires"]
        return ContextRecord(context_id=context_id, data=decode(row["payload"]),
                             created_at=row["created_at"], updated_at=row["updated_at"],
                             version=row["version"], ttl=row["ttl"],
                             expires_at=utc_iso(expires) if expires is not None else None)

    def _load(self) -> None:
        if self._loaded or self.path is None or not self.path.exists():
            self._loaded = True
            return
        try:
            rows = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BackendUnavailableError(self.backend_name,
                                          f"cannot read {self.path}: {exc.strerror}") from None
        except ValueError as exc:
            raise CorruptRecordError(self.backend_name, "contexts", str(self.path), "file",
                                     f"not JSON: {exc}") from None
        self._rows, self._loaded = rows, True

    def _save(self, before: dict[str, Row]) -> None:
        """Write the file atomically; on failure the dict is put back as it was."""
        if self.path is None:
            return
        partial = self.path.with_name(self.path.name + ".tmp")
        try:
            partial.write_text(json.dumps(self._rows), encoding="utf-8")
            os.replace(partial, self.path)
        except OSError as exc:
            self._rows = before
            raise BackendUnavailableError(self.backend_name,
                                          f"cannot write {self.path}: {exc.strerror}") from None


class ExampleOptions(BaseModel):
    """The options configuration gives the ``example`` backend."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, description="JSON file to keep contexts in; "
                             "None keeps them in memory only.")


def build(options: ExampleOptions, context: BuildContext) -> DictContextStore:
    """The factory the registry calls with the parsed options and the facade's build
    context (its clock); the facade connects the store on first use."""
    return DictContextStore(options.path, clock=context.clock)


BACKEND = Backend("example", frozenset({"context"}), build, ExampleOptions)
"""What the entry point names (``example = "example_backend:BACKEND"`` in the group
``memory_resources.backends``): the roles it fills, its options, its factory."""
