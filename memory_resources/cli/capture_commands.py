"""What the capture hooks wrote and kept: ``history``, ``outputs``, ``outbox status|replay``.

``history`` and ``outputs`` read the process default MemoryAPI (``MEMORY_RESOURCES_*``
environment variables, else the embedded default) or, with ``--block NAME``, a saved
``MemoryStore`` block (needs a Prefect API). They exit 1 when nothing matched and 2 on a
library error (bad argument, backend down), with the message on stderr.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from . import app
from .guard import exit_on_error, timeout_option
from .progress import QUIET_HELP, working

outbox_app = typer.Typer(
    help="Records a capture hook could not write, kept until replayed.", no_args_is_help=True
)
app.add_typer(outbox_app, name="outbox")

_OUTBOX_OPTION = typer.Option(
    None, "--outbox", help="Outbox file (default: $MEMORY_RESOURCES_OUTBOX, else "
    "outbox.db in $MEMORY_RESOURCES_HOME).")


def _open(path: Path | None) -> Any:
    from ..capture.outbox import Outbox

    return Outbox(path)


def _age(created: float | None, now: float) -> str:
    """How long ago, in the largest sensible unit (``42s``, ``17m``, ``5h``, ``3d``)."""
    if created is None:
        return ""
    seconds = int(max(0.0, now - created))
    for limit, size, unit in ((120, 1, "s"), (7200, 60, "m"), (172800, 3600, "h")):
        if seconds < limit:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86400}d"


def _stamp(stamp: float | None) -> str:
    if not stamp:
        return ""
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat(timespec="seconds")


@outbox_app.command("status")
def outbox_status(
    path: Path | None = _OUTBOX_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    timeout: float = timeout_option(),
) -> None:
    """Waiting records per target and kind with the oldest one's age, and the records set
    aside (undecodable or rejected by the store); exit code 1 when any record waits or was
    set aside."""
    from rich.console import Console
    from rich.table import Table

    def read() -> tuple[Any, list[Any], list[Any]]:
        outbox = _open(path)
        try:
            return outbox, outbox.counts(), outbox.set_aside_records()
        finally:
            outbox.close()

    outbox, rows, aside = exit_on_error(read, timeout)
    now = time.time()
    if as_json:
        typer.echo(json.dumps({
            "outbox": str(outbox.path),
            "pending": [{"target": t, "label": label, "kind": kind, "count": n,
                         "oldest": oldest,
                         "oldest_age_seconds": round(now - oldest, 3) if oldest else None}
                        for t, label, kind, n, oldest in rows],
            "set_aside": [{"id": a.id, "target": a.target, "label": a.label, "kind": a.kind,
                           "record_key": a.record_key, "reason": a.reason,
                           "created_at": a.created_at, "set_aside_at": a.set_aside_at}
                          for a in aside],
        }, indent=2))
    else:
        console = Console()
        if not rows and not aside:
            console.print(f"outbox {outbox.path}: empty")
        if rows:
            table = Table(title=f"outbox {outbox.path}: waiting")
            for column in ("target", "kind", "pending", "oldest", "age"):
                table.add_column(column)
            for _target, label, kind, count, oldest in rows:
                table.add_row(label, kind, str(count), _stamp(oldest), _age(oldest, now))
            console.print(table)
            console.print("write them now: memory-resources outbox replay --outbox "
                          f"{outbox.path}", soft_wrap=True)
        if aside:
            table = Table(title=f"outbox {outbox.path}: set aside (never retried)")
            for column in ("id", "target", "kind", "record", "reason", "set aside"):
                table.add_column(column)
            for a in aside:
                table.add_row(str(a.id), a.label, a.kind, a.record_key, a.reason,
                              _stamp(a.set_aside_at))
            console.print(table)
    if rows or aside:
        raise typer.Exit(code=1)


@outbox_app.command("replay")
def outbox_replay(
    path: Path | None = _OUTBOX_OPTION,
    block: str | None = typer.Option(
        None, "--block", help="Name of a saved MemoryStore block to replay into."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help=QUIET_HELP),
    timeout: float = timeout_option(600.0),
) -> None:
    """Write the kept records to their stores, each once, also with other replays running
    at once; exit code 1 if any record remains (not counting records another replay is
    writing)."""
    from rich.console import Console
    from rich.table import Table

    from ..blocks.store import MemoryStore
    from ..blocks.targets import memory_store_for_target
    from ..capture.replay import replay_outbox

    memory = None
    if block is not None:
        try:
            loader: Any = MemoryStore.load
            memory = loader(block, _sync=True)
        except Exception as exc:
            typer.echo(f"error: cannot load MemoryStore block {block!r}: {exc}", err=True)
            raise typer.Exit(code=2) from None
    with working("replaying the outbox", quiet=quiet) as steps:
        def replay() -> tuple[Any, list[Any]]:
            outbox = _open(path)
            try:
                return outbox, replay_outbox(outbox, memory=memory,
                                             resolve=memory_store_for_target,
                                             on_step=steps.step)
            finally:
                outbox.close()

        outbox, results = exit_on_error(replay, timeout)
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        table = Table(title=f"outbox replay {outbox.path}")
        for column in ("target", "written", "skipped", "set aside", "remaining",
                       "in flight", "error"):
            table.add_column(column)
        for r in results:
            table.add_row(r.label, str(r.written), str(r.skipped), str(r.set_aside),
                          str(r.remaining), str(r.in_flight), r.error or "")
        Console().print(table if results else f"outbox {outbox.path}: nothing to replay")
    if any(r.remaining for r in results):
        raise typer.Exit(code=1)


# -- history / outputs ------------------------------------------------------------------

_BLOCK_OPTION = typer.Option(
    None, "--block", help="Read a saved MemoryStore block (by name) instead of the "
    "process default store (needs a Prefect API).")
_STATUS_STYLE = {"completed": "green", "running": "cyan", "failed": "red", "crashed": "red",
                 "cancelled": "yellow", "cancelling": "yellow"}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")
_SCAN_PAGE = 1000


def _memory_api(block: str | None) -> Any:
    """The MemoryAPI to read: the block's, else the process default."""
    if block is None:
        from ..default import get_memory_api

        return get_memory_api()
    from ..blocks.store import MemoryStore

    try:
        loader: Any = MemoryStore.load
        return loader(block, _sync=True).api
    except Exception as exc:
        typer.echo(f"error: cannot load MemoryStore block {block!r}: {exc}", err=True)
        raise typer.Exit(code=2) from None


def runs_of_flow(api: Any, flow: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` history rows of the flow named (or with the id) ``flow``.

    The store filters (``flow_id`` / ``flow_name``): a UUID that is a flow id with rows
    reads those rows; otherwise the rows whose ``flow_id`` or ``flow_name`` equals ``flow``
    are merged newest first.
    """
    from ..validation import require_id, require_positive_int

    flow = require_id(flow, "flow")
    limit = require_positive_int(limit, "limit", maximum=100_000)
    by_id = _newest(api, limit, flow_id=flow)
    if by_id and _UUID.fullmatch(flow):
        return by_id
    merged = {(r["flow_id"], r["run_id"]): r
              for r in by_id + _newest(api, limit, flow_name=flow)}
    return sorted(merged.values(), key=lambda r: str(r["created_at"]), reverse=True)[:limit]


def _newest(api: Any, limit: int, *, flow_id: str | None = None,
            flow_name: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` rows matching the filter, read in pages of at most
    ``_SCAN_PAGE`` bounded by ``created_at`` (a store reads at most 10,000 rows a call).
    Each page re-reads its boundary instant and drops duplicates, so rows sharing an
    instant with a page boundary are not skipped (unless more than a whole page of rows
    share one microsecond)."""
    found: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    until: dt.datetime | None = None
    page_size = min(limit, _SCAN_PAGE)
    while len(found) < limit:
        page = api.read_flow_run_history(flow_id, limit=page_size, until=until,
                                         flow_name=flow_name)
        fresh = [r for r in page if (r["flow_id"], r["run_id"]) not in seen]
        seen.update((r["flow_id"], r["run_id"]) for r in fresh)
        found.extend(fresh)
        if len(page) < page_size:
            break
        oldest = dt.datetime.fromisoformat(page[-1]["created_at"])
        # re-read the oldest instant unless the page held nothing new (then step past it)
        until = oldest + dt.timedelta(microseconds=1) if fresh else oldest
    return found[:limit]


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else ""


def _seconds(value: Any) -> str:
    return f"{value:.2f}s" if isinstance(value, (int, float)) else ""


def _status(value: str | None) -> str:
    text = value or "?"
    return f"[{_STATUS_STYLE.get(text, 'white')}]{text}[/]"


def _clip(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _show(records: list[dict[str, Any]], as_json: bool, none_found: str,
          as_table: Callable[[list[dict[str, Any]]], Any]) -> None:
    """Print ``records`` as JSON or as the rich table ``as_table(records)``, or
    ``none_found`` on stderr when there are none; exit code 1 when there are none."""
    from rich.console import Console

    if as_json:
        typer.echo(json.dumps(records, indent=2, sort_keys=True, default=str))
    elif not records:
        Console(stderr=True).print(none_found)
    else:
        Console().print(as_table(records))
    if not records:
        raise typer.Exit(code=1)


def _epoch(value: str | None) -> float | None:
    import datetime as dt

    return dt.datetime.fromisoformat(value).timestamp() if value else None


def run_phases(timeline: list[dict[str, Any]]) -> tuple[float | None, list[float]]:
    """``(queue seconds, attempt seconds)`` of a state timeline: the queue is the first
    state to the first Running; an attempt is a Running to the state after it."""
    times = [_epoch(entry.get("timestamp")) for entry in timeline]
    queue: float | None = None
    attempts: list[float] = []
    for i, entry in enumerate(timeline):
        if entry.get("type") != "RUNNING" or times[i] is None:
            continue
        if queue is None and times[0] is not None:
            queue = max(0.0, times[i] - times[0])  # type: ignore[operator]
        if i + 1 < len(timeline) and times[i + 1] is not None:
            attempts.append(max(0.0, times[i + 1] - times[i]))  # type: ignore[operator]
    return queue, attempts


def timeline_table(flow: str, rows: list[dict[str, Any]]) -> Any:
    """The runs' state timelines as one rich table (one line per state)."""
    from rich.table import Table

    table = Table(title=f"state timeline of {flow} — {len(rows)} run(s), newest first")
    for column in ("run", "state", "type", "at", "+s", "phases"):
        table.add_column(column, overflow="fold")
    for row in rows:
        entries = list((row["data"] or {}).get("timeline") or [])
        if not entries:
            table.add_row(row["run_id"], _status(row["status"]), "", "", "",
                          "no timeline recorded", end_section=True)
            continue
        queue, attempts = run_phases(entries)
        phases = "; ".join(filter(None, [
            f"queued {queue:.2f}s" if queue is not None else "",
            "attempts " + ", ".join(f"{a:.2f}s" for a in attempts) if attempts else ""]))
        start = _epoch(entries[0].get("timestamp"))
        for i, entry in enumerate(entries):
            at = _epoch(entry.get("timestamp"))
            offset = f"+{at - start:.2f}" if at is not None and start is not None else ""
            table.add_row(row["run_id"] if i == 0 else "", str(entry.get("name")),
                          str(entry.get("type")), _when(entry.get("timestamp")), offset,
                          phases if i == 0 else "", end_section=i == len(entries) - 1)
    return table


@app.command()
def history(
    flow: str = typer.Option(..., "--flow", help="Flow name (or flow id) whose runs to show."),
    limit: int = typer.Option(20, "--limit", min=1, help="Newest runs to show."),
    block: str | None = _BLOCK_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the history rows as JSON."),
    timeline: bool = typer.Option(
        False, "--timeline",
        help="Show each run's states (Scheduled, Pending, Running, retries, end) with "
             "times, queue time and attempt durations."),
    timeout: float = timeout_option(),
) -> None:
    """Show a flow's captured runs, newest first; exit code 1 when it has none."""
    from rich.table import Table

    def read() -> list[dict[str, Any]]:
        return runs_of_flow(_memory_api(block), flow, limit)

    if timeline and not as_json:
        _show(exit_on_error(read, timeout), False, f"no captured runs of flow {flow!r}",
              lambda rows: timeline_table(flow, rows))
        return

    def as_table(rows: list[dict[str, Any]]) -> Table:
        table = Table(title=f"history of {flow} — {len(rows)} run(s), newest first")
        deployed = any(row["deployment_id"] for row in rows)
        for column in ("started", "run", "name", "status", "duration", "try",
                       *(["deployment"] if deployed else []), "error"):
            table.add_column(column, overflow="fold")
        for row in rows:
            error = ": ".join(filter(None, [row["error_type"], row["error_message"]]))
            table.add_row(
                _when(row["started_at"] or row["created_at"]), row["run_id"],
                str(row["data"].get("flow_run_name") or ""), _status(row["status"]),
                _seconds(row["duration"]), str(row["run_count"] or ""),
                *([row["deployment_id"] or ""] if deployed else []), _clip(error, 120),
            )
        return table

    _show(exit_on_error(read, timeout), as_json, f"no captured runs of flow {flow!r}",
          as_table)


@app.command()
def outputs(
    task: str = typer.Option(..., "--task", help="Task run id whose stored outputs to show."),
    limit: int = typer.Option(10, "--limit", min=1, help="Newest versions to show."),
    block: str | None = _BLOCK_OPTION,
    full: bool = typer.Option(False, "--full", help="Do not shorten long outputs."),
    as_json: bool = typer.Option(False, "--json", help="Print the output records as JSON."),
    timeout: float = timeout_option(),
) -> None:
    """Show a task run's stored output (every version, newest first); exit 1 when none."""
    from rich.table import Table

    def read() -> list[dict[str, Any]]:
        from ..validation import require_id

        records: list[dict[str, Any]] = _memory_api(block).list_task_outputs(
            require_id(task, "task"), limit)
        return records

    def as_table(records: list[dict[str, Any]]) -> Table:
        table = Table(title=f"outputs of task {task} — {len(records)} version(s), newest first")
        for column in ("version", "stored", "task", "flow run", "state", "output"):
            table.add_column(column, overflow="fold")
        for record in records:
            metadata = record["metadata"]
            output = json.dumps(record["output"], sort_keys=True, default=str)
            table.add_row(
                str(record["version"]), _when(record["created_at"]),
                str(metadata.get("task_name") or ""), record["flow_run_id"] or "",
                str(metadata.get("state_name") or ""), output if full else _clip(output, 400),
            )
        return table

    _show(exit_on_error(read, timeout), as_json, f"no stored output for task {task!r}",
          as_table)
