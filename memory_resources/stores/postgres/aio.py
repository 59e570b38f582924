"""``AsyncPostgresStore``: the PostgreSQL store on asyncpg, a second transport of
:class:`~memory_resources.stores.postgres.store.PostgresStore`.

Why asyncpg (measured on this machine's PostgreSQL 16, interleaved, medians; figures in
``docs/async.md``): the history upsert costs the same on both async drivers (the commit's
WAL flush dominates: ~3.2 ms single, ~1.4-1.5k writes/s with 64 coroutines), while a
primary-key read took ~0.5 ms on asyncpg against ~1.4 ms on psycopg 3's async pool; and
asyncpg is already installed with Prefect, psycopg 3 would be a new dependency.

Every operation is the repository's :class:`~.plan.Op` (validation, encoding, SQL text,
control flow between statements, partition upkeep, expiry sweeps and record building are
the sync store's code); this module only runs it: ``%(name)s`` placeholders become ``$n``
(the conversion the sync store uses for its prepared statements), asyncpg prepares and
caches each statement per connection, JSON/JSONB decode with the library codec. An Op that
is not autocommit runs in one transaction. Idempotent operations are retried on connection
failures, serialization failures and deadlocks (``retry_attempts``, the sync store's
backoff); each attempt waits at most ``connection_timeout`` for a connection and
:meth:`AsyncPostgresStore.call_budget` for the whole call (a connection that timed out
is dropped, not reused). Migrations, the monthly partition check and ``stats()`` run the
sync store's code on a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, TypeVar

import asyncpg

from ...clock import SYSTEM_CLOCK, Clock
from ...config import PostgresConfig, parse_config
from ...errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    CorruptRecordError,
)
from ...records import (
    AuditRecord,
    ContextRecord,
    EventRecord,
    FlowRunRecord,
    FlowRunWrite,
    HealthReport,
    JSONDict,
    TaskOutputRecord,
    TaskOutputWrite,
)
from ..offload import ThreadOffload, within
from . import audit, context, history, locks, outputs
from .aio_driver import (
    CAUGHT,
    RawStatement,
    connect_options,
    dollar_text,
    fetch_result,
    init_connection,
    is_transient,
    keep_session,
    quote_ident,
    translate,
)
from .budget import Backoff, secrets_of
from .errors import BACKEND
from .local import start_local_server
from .plan import Op
from .replica import PRIMARY_LSN, REPLAYED_ASYNC, ReplicaLagging, ReplicaRouter, await_replayed
from .store import _TEMPLATES, PURGE_INTERVAL, PostgresStore

T = TypeVar("T")

_REPLICA_FAULTS: tuple[type[BaseException], ...] = (*CAUGHT, BackendError)
"""What sends a replica read to the primary (CorruptRecordError is caught before)."""


class AsyncPostgresStore:
    """Context, events, locks, run history, task outputs and audit on PostgreSQL for
    coroutines: :class:`PostgresStore`'s methods, awaitable, same records and errors."""

    backend_name = "postgres"

    def __init__(self, config: PostgresConfig | dict[str, Any], *,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.config: PostgresConfig = parse_config(PostgresConfig, config, "postgres_config")
        self.clock = clock
        self.max_payload_bytes = self.config.max_payload_bytes
        self.schema = self.config.schema_
        self._secrets = secrets_of(self.config)
        self._statements = {name: template.replace("{s}", quote_ident(self.schema))
                            for name, template in _TEMPLATES.items()}
        self._pool: asyncpg.Pool | None = None
        self._replica: asyncpg.Pool | None = None
        self._router = ReplicaRouter(self.config) if self.config.read_replica_dsn else None
        self._companion: ThreadOffload | None = None
        self._open_lock: asyncio.Lock | None = None
        self._partition_month: tuple[int, int] | None = None
        self._next_purge = clock.monotonic() + PURGE_INTERVAL
        self.backoff = Backoff()
        self._history = history.HistoryRepo(self)
        self._outputs = outputs.OutputRepo(self)
        self._audit = audit.AuditReader(self)
        self._context = context.ContextRepo(self)
        self._locks = locks.LockRepo(self)

    # -- lifecycle -------------------------------------------------------------------------

    def _sync(self) -> ThreadOffload:
        """The sync store on a worker thread (migrations, local server, stats)."""
        if self._companion is None:
            self._companion = ThreadOffload(PostgresStore(self.config, clock=self.clock),
                                            max_workers=1)
        return self._companion

    async def connect(self) -> None:
        """Migrate / check the schema (sync store, off the loop), open the asyncpg pool(s)
        and create this month's partitions. Idempotent."""
        if self._pool is not None:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._pool is not None:
                return
            companion = self._sync()
            await companion.connect()
            config = self.config
            if config.local_server:  # started (idempotently) by the companion's connect
                config = await companion.run(start_local_server, config)
            self._pool = await self._create_pool(config, replica=False)
            if config.read_replica_dsn is not None:
                self._replica = await self._create_pool(config, replica=True)
            self._partition_month = None
        await self.ensure_partitions(dt.datetime.fromtimestamp(self.clock.time(),
                                                               dt.timezone.utc))

    async def _create_pool(self, config: PostgresConfig, *, replica: bool) -> asyncpg.Pool:
        try:
            # The replica pool opens connections on demand: a replica that is down must not
            # stop the store from connecting (its reads go to the primary meanwhile).
            return await asyncpg.create_pool(
                min_size=0 if replica else min(config.min_connections, config.max_connections),
                max_size=config.max_connections, init=init_connection, reset=keep_session,
                **connect_options(config, replica=replica))
        except CAUGHT as exc:
            raise translate(exc, self._secrets) from None

    async def close(self) -> None:
        """Close the pools and the sync companion. Idempotent; reconnects on next use."""
        pools = (self._pool, self._replica)
        self._pool = self._replica = None
        companion, self._companion = self._companion, None
        for pool in pools:
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), self.config.connection_timeout)
                except Exception:  # a dead server: drop the connections
                    pool.terminate()
        if companion is not None:
            await companion.close()

    async def __aenter__(self) -> AsyncPostgresStore:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def health_check(self) -> HealthReport:
        """Round trip and server version; reports (never raises) a backend fault."""
        started = time.perf_counter()
        try:
            if self._pool is None:
                await self.connect()
            row = await self._attempts(
                RawStatement("SELECT current_setting('server_version'), current_database()", ()),
                idempotent=True)
        except BackendError as exc:
            return HealthReport(status="unhealthy", backend=BACKEND, error=str(exc),
                                latency_ms=round((time.perf_counter() - started) * 1000, 3))
        return HealthReport(
            status="healthy", backend=BACKEND,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            details={"server_version": row[0], "database": row[1], "schema": self.schema,
                     "driver": "asyncpg"})

    def replica_status(self) -> JSONDict | None:
        """:meth:`PostgresPool.replica_status` of this store's asyncpg pools: where reads went
        and whether the replica is down; None without ``read_replica_dsn``."""
        return None if self._router is None else self._router.stats()

    async def stats(self) -> JSONDict:
        """The sync store's statistics (sizes, partitions, connections), off the loop."""
        return await self._sync().stats()

    # -- running queries -------------------------------------------------------------------

    async def run(self, op: Op[T]) -> T:
        """Execute a repository's Op (partitions first, expiry sweep after)."""
        if self._pool is None:
            await self.connect()
        if op.partitions_at is not None:
            await self.ensure_partitions(op.partitions_at)
        router = self._router
        value: T
        if op.read_only and router is not None:
            value = await self._read(op, router)
        else:
            try:
                value = await self._attempts(op, op.idempotent)
            finally:
                if router is not None and not op.read_only:
                    router.note_write()
        if op.purge_after:
            await self.maybe_purge()
        return value

    async def _drive(self, conn: Any, op: Op[T]) -> T:
        """Run ``op``'s statements on ``conn``, feeding each result back to it."""
        steps = op.steps()
        reply: Any = None
        try:
            while True:
                stmt = steps.send(reply)
                text, names = dollar_text(stmt.prepared_name,
                                          self._statements[stmt.name] + stmt.suffix)
                reply = await fetch_result(conn, text, [stmt.params[n] for n in names], stmt.fetch)
        except StopIteration as done:
            value: T = done.value
            return value

    async def _read(self, op: Op[T], router: ReplicaRouter) -> T:
        """A read on the replica within ``replica_timeout`` (after it replayed this store's
        writes, under read_your_writes), else on the primary, in the call's budget
        (:mod:`.replica`; the sync pool's ``_replica_read`` is the same sequence)."""
        budget = self.call_budget()
        limit = None if budget is None else time.monotonic() + budget
        if router.use_replica() and self._replica is not None:
            target = None
            if router.read_your_writes:
                writes = router.uncovered()
                if writes is not None:
                    row = await self._attempts(RawStatement(PRIMARY_LSN, ()), True, limit)
                    router.cover(writes, str(row[0]))
                target = router.target()
            replica_limit = router.deadline(limit)
            try:
                value: T = await self._once(op, self._replica, replica_limit, target)
            except ReplicaLagging:
                router.lagged()
            except CorruptRecordError:
                raise
            except _REPLICA_FAULTS as exc:
                if self._pool is None:
                    raise BackendUnavailableError(BACKEND, "the store is closed") from None
                router.failed(exc if isinstance(exc, BackendError)
                              else translate(exc, self._secrets))
            else:
                router.succeeded()
                return value
        result: T = await self._attempts(op, op.idempotent, limit)
        return result

    async def _attempts(self, op: Op[T] | RawStatement, idempotent: bool,
                        limit: float | None = None) -> Any:
        """Attempts of one call on the primary within ``operation_timeout`` (waiting for a
        connection, retries and statements together, as on the sync store); ``limit``: a
        deadline set by the caller instead."""
        budget = self.call_budget()
        if limit is None:
            limit = None if budget is None else time.monotonic() + budget
        failures = 0
        while True:
            try:
                return await self._once(op, self._pool, limit)
            except CAUGHT as exc:
                failures += 1
                out_of_time = limit is not None and time.monotonic() >= limit - 0.001
                if out_of_time:
                    raise BackendTimeoutError(
                        BACKEND, f"no answer within operation_timeout={budget:g} s after "
                        f"{failures} attempt(s): {translate(exc, self._secrets)}") from None
                if not (idempotent and is_transient(exc)) or \
                        failures > self.config.retry_attempts:
                    error = translate(exc, self._secrets)
                    if isinstance(error, BackendUnavailableError) and failures > 1:
                        error = BackendUnavailableError(
                            BACKEND, f"unreachable after {failures} attempts: {error}")
                    raise error from None
            delay = self.backoff.compute(failures)
            if limit is not None:
                delay = min(delay, max(0.0, limit - time.monotonic()))
            await asyncio.sleep(delay)

    def call_budget(self) -> float | None:
        """Seconds one call may take: ``operation_timeout`` (the sync store's budget for
        waiting, connecting, retries and statements), else ``statement_timeout`` plus
        ``connection_timeout``, else None."""
        budget = getattr(self.config, "operation_timeout", None)
        if budget is not None:
            return float(budget)
        statement = self.config.statement_timeout
        if statement is None:
            return None
        return statement / 1000 + self.config.connection_timeout

    async def _once(self, op: Op[Any] | RawStatement, pool: asyncpg.Pool | None,
                    limit: float | None, replayed: str | None = None) -> Any:
        """One attempt: a pooled connection (at most ``connection_timeout``), then (on the
        replica) the wait until it ``replayed`` that WAL position, then the statements, all
        before ``limit`` (monotonic; None: no limit)."""
        if pool is None:
            raise BackendUnavailableError(BACKEND, "the store is closed")
        wait = self.config.connection_timeout
        if limit is not None:
            wait = max(0.001, min(wait, limit - time.monotonic()))
        conn = await pool.acquire(timeout=wait)
        try:
            return await within(self._on(conn, op, replayed, limit),
                                None if limit is None else limit - time.monotonic())
        except BaseException as exc:
            if isinstance(exc, ReplicaLagging):
                raise
            if not isinstance(exc, asyncpg.PostgresError) or is_transient(exc):
                # A silent or broken connection is not given back as is (asyncpg may have
                # detached a dead one from the pool already: nothing left to terminate).
                with contextlib.suppress(asyncpg.InterfaceError):
                    conn.terminate()
            raise
        finally:
            await pool.release(conn, timeout=self.config.connection_timeout)

    async def _on(self, conn: Any, op: Op[Any] | RawStatement, replayed: str | None = None,
                  limit: float | None = None) -> Any:
        if replayed is not None and self._router is not None:
            async def check(position: str) -> bool:
                return bool(await conn.fetchval(REPLAYED_ASYNC, position))
            await await_replayed(check, replayed, self._router, self._router.deadline(limit))
        if isinstance(op, RawStatement):
            return await fetch_result(conn, op.text, op.args, "one")
        if op.autocommit:
            return await self._drive(conn, op)
        async with conn.transaction():
            return await self._drive(conn, op)

    async def ensure_partitions(self, now: dt.datetime) -> None:
        """Once per month of ``now``: the sync store's partition check (and creation when
        it may migrate), on a worker thread."""
        month = (now.year, now.month)
        if self._partition_month == month:
            return
        companion = self._sync()
        await companion.run(companion.store.ensure_partitions, now)
        self._partition_month = month

    async def maybe_purge(self) -> None:
        """Sweep expired contexts if ``PURGE_INTERVAL`` has passed since the last sweep."""
        now = self.clock.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        await self.run(self._context.plan_purge())

    async def purge_expired(self) -> int:
        """Delete every expired context and its events now; returns contexts removed."""
        return await self.run(self._context.plan_purge())

    # -- ContextStore / EventLog -----------------------------------------------------------

    async def _maybe(self, op: Op[list[T]] | None) -> list[T]:
        return [] if op is None else await self.run(op)

    async def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                          ) -> ContextRecord:
        return (await self._maybe(self._context.plan_set_many((context_id, data), ttl,
                                                              one=True)))[0]

    async def set_contexts(self, items: Any, ttl: int | None = None) -> list[ContextRecord]:
        return await self._maybe(self._context.plan_set_many(items, ttl))

    async def get_context(self, context_id: str) -> ContextRecord | None:
        return await self.run(self._context.plan_get(context_id))

    async def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        return await self._maybe(self._context.plan_get_many(context_ids))

    async def clear_context(self, context_id: str) -> bool:
        return await self.run(self._context.plan_clear(context_id))

    async def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        return (await self._maybe(self._context.plan_append(context_id, event, one=True)))[0]

    async def append_events(self, context_id: str, events: Sequence[JSONDict]
                            ) -> list[EventRecord]:
        return await self._maybe(self._context.plan_append(context_id, events))

    async def get_events(self, context_id: str, since: str | None = None,
                         limit: int | None = None) -> list[EventRecord]:
        return await self.run(self._context.plan_events(context_id, since, limit))

    # -- LockManager -----------------------------------------------------------------------

    async def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        return await self.run(self._locks.plan_acquire(name, owner, ttl_ms))

    async def release(self, name: str, owner: str) -> bool:
        return await self.run(self._locks.plan_release(name, owner))

    async def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        return await self.run(self._locks.plan_extend(name, owner, ttl_ms))

    async def is_held(self, name: str) -> bool:
        return await self.run(self._locks.plan_is_held(name))

    # -- RunHistory / TaskOutputs / AuditLog -----------------------------------------------

    async def write_flow_run(self, record: FlowRunWrite) -> FlowRunRecord:
        return await self.run(self._history.plan_write(record))

    async def write_flow_runs(self, records: Sequence[FlowRunWrite]) -> int:
        op = self._history.plan_write_many(records)
        return 0 if op is None else await self.run(op)

    async def read_flow_runs(self, flow_id: str | None, run_id: str | None = None,
                             limit: int = 100, **filters: Any) -> list[FlowRunRecord]:
        return await self.run(self._history.plan_read(flow_id, run_id, limit, **filters))

    async def write_task_output(self, task_id: str, output: Any,
                                metadata: JSONDict | None = None, **ids: Any
                                ) -> TaskOutputRecord:
        return (await self.write_task_output_once(task_id, output, metadata, **ids))[0]

    async def write_task_output_once(self, task_id: str, output: Any,
                                     metadata: JSONDict | None = None, **ids: Any
                                     ) -> tuple[TaskOutputRecord, bool]:
        return await self.run(self._outputs.plan_write_once(task_id, output, metadata, **ids))

    async def write_task_outputs(self, items: Sequence[TaskOutputWrite]
                                 ) -> list[TaskOutputRecord]:
        return await self._maybe(self._outputs.plan_write_many(items))

    async def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        found = await self.run(self._outputs.plan_select(task_id, 1))
        return found[0] if found else None

    async def list_task_outputs(self, task_id: str, limit: int = 100
                                ) -> list[TaskOutputRecord]:
        return await self.run(self._outputs.plan_select(task_id, limit))

    async def read_audit(self, **filters: Any) -> list[AuditRecord]:
        return await self.run(self._audit.plan_read(**filters))

    def __repr__(self) -> str:
        return (f"AsyncPostgresStore(schema={self.schema!r}, "
                f"connected={self._pool is not None})")


__all__ = ["AsyncPostgresStore", "dollar_text"]
