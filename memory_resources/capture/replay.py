"""Replay the outbox into the stores it was meant for (``memory-resources outbox replay``).

Each target of the outbox is reached through the caller: either one store given as
``memory`` (``--block NAME``), or a ``resolve(target)`` function that rebuilds the store a
target was captured with (the blocks layer provides
:func:`memory_resources.blocks.targets.memory_store_for_target`: the saved block by name, else
the secret-free configuration recorded with the target). A store is anything with
``capture_writer(outbox=..., target=...)`` and ``outbox_target()``. Replays are idempotent:
history rows are upserts, an output already stored is skipped.

This module imports neither Prefect nor the blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from ..protocols import StepReport
from .outbox import Outbox, OutboxTarget

Resolver = Callable[[OutboxTarget], Any]
"""Builds the store an outbox target's records go to."""


@dataclasses.dataclass
class TargetReplay:
    """The outcome of replaying one target."""

    target: str
    label: str
    written: int = 0
    skipped: int = 0
    set_aside: int = 0
    remaining: int = 0
    in_flight: int = 0
    """Records another replayer was writing (claimed under a live lease)."""
    error: str | None = None


def replay_outbox(
    outbox: Outbox, *, memory: Any = None, resolve: Resolver | None = None,
    on_step: StepReport | None = None,
) -> list[TargetReplay]:
    """Replay every pending target through ``resolve`` (or only ``memory``'s records into
    ``memory``); ``on_step(label, n, N)`` is called before target n of N (the CLI's
    progress display)."""
    if memory is None and resolve is None:
        raise ConfigurationError("replay_outbox needs memory= or resolve=")

    def store_for(target: OutboxTarget) -> Any:
        return memory if memory is not None or resolve is None else resolve(target)

    known = {t.target: t for t in outbox.targets()}
    pending = {entry.target for entry in outbox.pending()}
    results: list[TargetReplay] = []
    if memory is not None:
        own = memory.outbox_target()
        targets = [known.get(own.target, own)]
        if own.target not in pending:
            # records of an earlier configuration of the same saved block
            targets += [t for t in known.values() if t.target in pending and
                        t.block_name and t.block_name == own.block_name]
    else:
        targets = [known.get(t, OutboxTarget(t, t, None, None)) for t in sorted(pending)]
    for index, target in enumerate(targets, 1):
        if on_step is not None:
            on_step(target.label, index, len(targets))
        result = TargetReplay(target.target, target.label)
        try:
            store = store_for(target)
            report = store.capture_writer(outbox=outbox, target=target).replay()
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            result.remaining, result.in_flight = outbox.waiting(target.target)
            results.append(result)
            continue
        result.written, result.skipped = report.written, report.skipped
        result.set_aside = report.set_aside
        result.remaining, result.in_flight = report.remaining, report.in_flight
        if report.errors:
            result.error = report.errors[-1]
        results.append(result)
    return results


__all__ = ["Resolver", "TargetReplay", "replay_outbox"]
