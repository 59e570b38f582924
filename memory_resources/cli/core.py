"""CLI commands: core (registered on memory_resources.cli.app)."""

from __future__ import annotations
