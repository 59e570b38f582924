"""The WHERE clause of the SQL read methods: optional filters, AND-ed in the order given.

The text depends only on which filters are set (never on their values), so a statement
keyed by its text — PostgreSQL's server-side prepared statements — is reused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Where:
    """Filter clauses with their validated parameters, for ``?`` (sqlite3) or
    ``%(name)s`` (psycopg2) placeholders."""

    def __init__(self, *, named: bool) -> None:
        self._named = named
        self._clauses: list[str] = []
        self.params: dict[str, Any] = {}
        """Parameters by name, in the order their clauses were added."""

    def add(self, name: str, value: Any, check: Callable[[Any, str], Any], *,
            column: str | None = None, op: str = "=") -> None:
        """AND ``column op :name`` (``column`` defaults to ``name``) unless ``value`` is
        None; ``check(value, name)`` validates and converts the value."""
        if value is None:
            return
        placeholder = f"%({name})s" if self._named else "?"
        self._clauses.append(f"{column or name} {op} {placeholder}")
        self.params[name] = check(value, name)

    def sql(self, lead: str = "WHERE") -> str:
        """``" WHERE a AND b"`` (``lead="AND"`` continues an existing WHERE), or ``""``
        when no filter is set."""
        return f" {lead} {' AND '.join(self._clauses)}" if self._clauses else ""

    @property
    def values(self) -> list[Any]:
        """The parameters in clause order (for ``?`` placeholders)."""
        return list(self.params.values())
