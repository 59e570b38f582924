"""``memory-resources health`` and ``memory-resources stats`` on the process default
MemoryAPI (configured from ``MEMORY_RESOURCES_*`` environment variables)."""

from __future__ import annotations

import json
from typing import Any

import typer

from . import app
from .guard import exit_on_error, timeout_option

_STYLE = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}


def _print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


def _load(action: str, timeout: float) -> Any:
    """Run ``action`` on the process default API within ``timeout`` seconds; a library
    error exits 2 with its message."""
    from ..default import get_memory_api

    return exit_on_error(lambda: getattr(get_memory_api(), action)(), timeout)


def _latency(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else ""


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return "" if value is None else str(value)


@app.command()
def health(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    strict: bool = typer.Option(
        False, "--strict", help="Exit 1 when any backend is not healthy (degraded too): "
        "for probes and cron jobs."),
    timeout: float = timeout_option(10.0),
) -> None:
    """Check every backend; exit code 1 when the memory store is unhealthy (with
    --strict: when it is not healthy), 2 on a configuration error or timeout."""
    from rich.console import Console
    from rich.table import Table

    report = _load("health_check", timeout)
    if as_json:
        _print_json(report)
    else:
        table = Table(title=f"memory-resources health — {report['overall_status']}")
        for column in ("adapter", "backend", "status", "latency ms", "serves", "error"):
            table.add_column(column)
        for name, entry in report["adapters"].items():
            status = str(entry.get("status"))
            table.add_row(
                name, str(entry.get("backend", "")),
                f"[{_STYLE.get(status, 'red')}]{status}[/]",
                _latency(entry.get("latency_ms")), ", ".join(entry.get("serves", [])),
                _scalar(entry.get("error")),
            )
        Console().print(table)
    if report["overall_status"] == "unhealthy" or (
            strict and report["overall_status"] != "healthy"):
        raise typer.Exit(code=1)


@app.command()
def stats(
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    timeout: float = timeout_option(),
) -> None:
    """Show each backend's statistics (memory, connections, embeddings, sizes)."""
    from rich.console import Console
    from rich.table import Table

    report = _load("get_memory_stats", timeout)
    if as_json:
        _print_json(report)
        return
    console = Console()
    for name, values in report["adapters"].items():
        table = Table(title=f"{name} ({values.get('backend', '?')})")
        table.add_column("statistic")
        table.add_column("value", overflow="fold")
        for key in sorted(values):
            table.add_row(key, _scalar(values[key]))
        console.print(table)
