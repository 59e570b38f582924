"""Example agent flows built on the memory_resources Prefect integration.

``python -m flows.demo_agent`` (``make demo``) and ``python -m flows.rag_agent`` run with no
server: Prefect in ephemeral mode, memory on the embedded default.
"""

from __future__ import annotations

import logging


def quiet_structlog() -> None:
    """Show library warnings only (unless the application configured structlog itself)."""
    import structlog

    if not structlog.is_configured():
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
