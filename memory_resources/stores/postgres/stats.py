"""``stats()`` of the PostgreSQL store: what the server, the schema's tables and their
partitions hold, read from the catalogs in one cursor."""

from __future__ import annotations

from collections.abc import Sequence

from ...records import JSONDict
from .pool import Cursor
from .support import one

TABLES = ("flow_run_history", "flow_run_history_keys", "task_outputs", "task_output_heads",
          "task_output_keys", "audit_log", "memory_context", "memory_events",
          "memory_event_heads", "memory_locks", "vector_embeddings", "schema_migrations")
"""Every table of the store's schema (``stats`` reports rows and size of each)."""


def collect_stats(cur: Cursor, schema: str, tables: Sequence[str]) -> JSONDict:
    """Connections, database size, version, per-table rows/sizes and partitions of
    ``schema`` (``tables``: the store's table names) in one cursor."""
    cur.execute(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),"
        " pg_database_size(current_database()), current_setting('server_version')"
    )
    active, db_size, version = one(cur)
    cur.execute(
        "WITH rel AS (SELECT c.oid, c.relname, c.relkind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')),"
        " parts AS (SELECT rel.relname, COALESCE(t.relid, rel.oid) AS relid FROM rel"
        " LEFT JOIN LATERAL pg_partition_tree(rel.oid) t ON rel.relkind = 'p')"
        " SELECT parts.relname, sum(GREATEST(p.reltuples, 0))::bigint,"
        " sum(pg_total_relation_size(parts.relid))::bigint"
        " FROM parts JOIN pg_class p ON p.oid = parts.relid GROUP BY parts.relname",
        (schema, list(tables)),
    )
    sizes = {name: {"rows_estimate": rows, "size_bytes": size}
             for name, rows, size in cur.fetchall()}
    cur.execute(
        "SELECT parent.relname, child.relname,"
        " pg_get_expr(child.relpartbound, child.oid), pg_total_relation_size(child.oid)"
        " FROM pg_inherits i JOIN pg_class child ON child.oid = i.inhrelid"
        " JOIN pg_class parent ON parent.oid = i.inhparent"
        " JOIN pg_namespace n ON n.oid = parent.relnamespace"
        " WHERE n.nspname = %s AND child.relkind IN ('r', 'p') ORDER BY 1, 2",
        (schema,),
    )
    partitions: dict[str, list[JSONDict]] = {}
    for parent, child, bound, size in cur.fetchall():
        partitions.setdefault(parent, []).append(
            {"name": child, "bound": bound, "size_bytes": size})
    return {"active_connections": active, "database_size_bytes": db_size,
            "server_version": version, "tables": sizes, "partitions": partitions}
