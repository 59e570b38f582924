"""Statistics of the pgvector backend: namespace counts and sizes."""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from ..postgres.pool import Cursor
from .naming import TABLE_COMMENT_PREFIX
from .setup import fetch_one
from .statements import Statements


def namespace_counts(cur: Cursor, schema: str) -> dict[str, int]:
    """Row counts of every pgvector namespace table in ``schema`` (found by its comment)."""
    cur.execute(
        "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r' "
        "AND obj_description(c.oid, 'pg_class') LIKE %s ORDER BY 2",
        (schema, TABLE_COMMENT_PREFIX.replace("_", r"\_") + "%"),
    )
    counts: dict[str, int] = {}
    for table, comment in cur.fetchall():
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
        counts[comment[len(TABLE_COMMENT_PREFIX):]] = int(fetch_one(cur)[0])
    return counts


def table_sizes(cur: Cursor, statements: Statements) -> dict[str, Any]:
    """Bytes of the namespace table's indexes and of the table with indexes and TOAST."""
    cur.execute(
        "SELECT pg_indexes_size(%s::regclass), pg_total_relation_size(%s::regclass)",
        (statements.table.as_string(cur),) * 2,
    )
    index_size, total_size = fetch_one(cur)
    return {"index_size_bytes": int(index_size), "table_size_bytes": int(total_size)}
