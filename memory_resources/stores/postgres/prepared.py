"""Hot statements as server-side prepared statements, PREPAREd once per pooled connection."""

from __future__ import annotations

import hashlib
import re
from typing import Any, NamedTuple

import psycopg2.extensions

Cursor = psycopg2.extensions.cursor


_NAMED = re.compile(r"%\((\w+)\)s")


class _Prepared(NamedTuple):
    """A ``%(name)s`` statement turned into a server-side prepared statement's parts."""

    name: str
    """``mr_<name>_<digest of the text>``: a changed statement gets a new name."""
    text: str
    """The statement with ``$n`` placeholders (what PREPARE takes)."""
    names: tuple[str, ...]
    """The parameter names in ``$n`` order."""
    execute: str
    """``EXECUTE <name> (%s, ...)``."""


_PREPARED: dict[tuple[str, str], _Prepared] = {}


def _prepared(name: str, statement: str) -> _Prepared:
    """The prepared-statement parts of ``statement`` (computed once per name and text)."""
    cached = _PREPARED.get((name, statement))
    if cached is None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        text = _NAMED.sub(number, statement).replace("%%", "%")
        prepared_name = f"mr_{name}_{hashlib.sha1(text.encode()).hexdigest()[:12]}"
        cached = _Prepared(prepared_name, text, tuple(names),
                           f"EXECUTE {prepared_name} ({', '.join(['%s'] * len(names))})")
        _PREPARED[(name, statement)] = cached
    return cached


def execute_prepared(cur: Cursor, name: str, statement: str, params: dict[str, Any], *,
                     enabled: bool = True) -> None:
    """Run a hot ``%(name)s`` statement as a server-side prepared statement: PREPAREd once
    per pooled connection, then only EXECUTEd (no parse/plan per call). Every parameter in
    ``statement`` must have a type the server can infer (cast it otherwise). With
    ``enabled=False`` (``prepared_statements`` off) the statement is sent as is."""
    done: set[str] | None = getattr(cur.connection, "prepared", None)
    if not enabled or done is None:
        cur.execute(statement, params)
        return
    prepared = _prepared(name, statement)
    if prepared.name not in done:
        cur.execute(f"PREPARE {prepared.name} AS {prepared.text}")
        done.add(prepared.name)
    cur.execute(prepared.execute, [params[n] for n in prepared.names])
