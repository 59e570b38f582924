"""Replay the outbox into the stores it was meant for (``memory-resources outbox replay``).

Each target of the outbox is reached, in this order: the ``MemoryStore`` given by the
caller (``--block NAME``); the saved block the target was captured with (loaded by name
from the Prefect API); the secret-free configuration recorded with the target (e.g. the
embedded default). A target whose configuration holds secrets and was not saved as a block
needs ``--block``. Replays are idempotent: history rows are upserts, an output already
stored is skipped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ConfigurationError
from .outbox import Outbox, OutboxTarget


@dataclasses.dataclass
class TargetReplay:
    """The outcome of replaying one target."""

    target: str
    label: str
    written: int = 0
    skipped: int = 0
    remaining: int = 0
    error: str | None = None


def _store_for(target: OutboxTarget) -> Any:
    from ..blocks.store import MemoryStore, memory_store_from_target_config

    if target.block_name:
        loader: Any = MemoryStore.load
        return loader(target.block_name, _sync=True)
    if target.config is not None:
        return memory_store_from_target_config(target.config)
    raise ConfigurationError(
        f"outbox target {target.label!r} was captured with a configuration holding secrets "
        "and no saved block: replay it with --block NAME"
    )


def replay_outbox(outbox: Outbox, *, memory: Any = None) -> list[TargetReplay]:
    """Replay every pending target (or only ``memory``'s records into ``memory``)."""
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
    for target in targets:
        result = TargetReplay(target.target, target.label)
        try:
            store = memory if memory is not None else _store_for(target)
            report = store.capture_writer(outbox=outbox, target=target).replay()
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            result.remaining = len(outbox.pending(target.target))
            results.append(result)
            continue
        result.written, result.skipped = report.written, report.skipped
        result.remaining = len(outbox.pending(target.target))
        if report.errors:
            result.error = report.errors[-1]
        results.append(result)
    return results


__all__ = ["TargetReplay", "replay_outbox"]
