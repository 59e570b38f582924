"""The ``memory-resources`` command line.

Commands live in one module per area, each adding to :data:`app`:
``core`` (health, stats), ``postgres_commands`` (migrate, maintain, prune), ``capture_commands``
(history, outputs, outbox).
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="memory-resources",
    help="Inspect and manage memory_resources stores.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from .._version import __version__

        typer.echo(f"memory-resources {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version,
        help="Print the version and exit."),
) -> None:
    """Inspect and manage memory_resources stores."""

from . import capture_commands, core, postgres_commands  # noqa: E402,F401  (register commands)


def main() -> None:
    """Console-script entry point."""
    from .guard import set_standalone

    set_standalone()
    app()
