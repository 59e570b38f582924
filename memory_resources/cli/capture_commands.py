"""CLI commands: capture_commands (registered on memory_resources.cli.app)."""

from __future__ import annotations
