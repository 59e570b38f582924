"""Result blobs: bytes by path in ``memory_results`` (Prefect result storage).

A path is one row; a write replaces the content (an upsert, so retrying it is safe). Reads
go to the primary, so a cache lookup right after a write sees it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg2

from ...validation import require_bytes, require_id
from .plan import SyncHost
from .pool import Cursor, execute_prepared
from .support import now_utc

READ = "SELECT content FROM {s}.memory_results WHERE path = %(path)s"
WRITE = (
    "INSERT INTO {s}.memory_results (path, content, written_at)"
    " VALUES (%(path)s, %(content)s, %(now)s) ON CONFLICT (path) DO UPDATE"
    " SET content = EXCLUDED.content, written_at = EXCLUDED.written_at"
)
DELETE = "DELETE FROM {s}.memory_results WHERE path = %(path)s"
TEMPLATES = {"blob.read": READ, "blob.write": WRITE, "blob.delete": DELETE}


@dataclasses.dataclass
class BlobRepo:
    """read_blob / write_blob / delete_blob (the ResultBlobs protocol)."""

    store: SyncHost

    def _run(self, name: str, params: dict[str, Any]) -> Any:
        statement = self.store.statement(name)
        enabled = self.store.config.prepared_statements

        def run(cur: Cursor) -> Any:
            execute_prepared(cur, name.replace(".", "_"), statement, params, enabled=enabled)
            return cur.fetchone() if cur.description else cur.rowcount

        return self.store.pool.run(run, idempotent=True, single_statement=True)

    def read_blob(self, path: str) -> bytes | None:
        """The bytes stored at ``path``, or None."""
        row = self._run("blob.read", {"path": require_id(path, "path")})
        return None if row is None else bytes(row[0])

    def write_blob(self, path: str, content: bytes) -> None:
        """Store ``content`` at ``path``, replacing what was there."""
        self._run("blob.write", {"path": require_id(path, "path"),
                                 "content": psycopg2.Binary(require_bytes(content, "content")),
                                 "now": now_utc(self.store.clock)})

    def delete_blob(self, path: str) -> bool:
        """Remove ``path``; False if nothing was stored there."""
        return int(self._run("blob.delete", {"path": require_id(path, "path")})) == 1

