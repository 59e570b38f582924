"""String ids <-> usearch integer keys, with each key's metadata and filter columns.

usearch keys are unsigned integers; a :class:`KeyTable` hands them out densely (a deleted
id's key is reused by the next new id), so a key doubles as the row of the metadata
columns (:class:`~memory_resources.vector_filter.MetadataColumns`) a filter evaluates.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...records import JSONDict
from ...vector_filter import Condition, MetadataColumns, evaluate_mask
from ..numpy_index.matrix import next_capacity


class KeyTable:
    """Which id holds which key, plus each key's metadata (JSON text and columns)."""

    def __init__(self) -> None:
        self.ids: list[str | None] = []
        """Id of each key (None: free)."""
        self.keys: dict[str, int] = {}
        self.metadata: list[str] = []
        """Codec JSON text of each key's metadata."""
        self.live = np.zeros(0, dtype=bool)
        self.columns = MetadataColumns()
        self._free: list[int] = []

    @property
    def size(self) -> int:
        """Ids stored."""
        return len(self.keys)

    @property
    def capacity(self) -> int:
        """Keys handed out so far (live or free)."""
        return len(self.ids)

    def _grow(self, needed: int) -> None:
        capacity = next_capacity(self.live.shape[0], needed)
        if capacity > self.live.shape[0]:
            live = np.zeros(capacity, dtype=bool)
            live[: self.live.shape[0]] = self.live
            self.columns.reserve(capacity, self.live.shape[0])
            self.live = live
        while len(self.ids) < needed:
            self.ids.append(None)
            self.metadata.append("{}")

    def allocate(self, count: int) -> list[int]:
        """``count`` unused keys (freed ones first, lowest first) to :meth:`assign` next."""
        taken = [heapq.heappop(self._free) for _ in range(min(count, len(self._free)))]
        start = len(self.ids)
        fresh = list(range(start, start + count - len(taken)))
        self._grow(start + len(fresh))
        return taken + fresh

    def assign(self, key: int, id: str, text: str, decoded: JSONDict) -> None:
        """Give ``key`` to ``id`` with this metadata (``key`` from :meth:`allocate`, or the
        id's own key on an update)."""
        if key >= len(self.ids):
            self._grow(key + 1)
        previous = self.ids[key]
        if previous is None:
            self.columns.set_row(key, decoded, fresh=True)
        else:
            self.keys.pop(previous, None)
            self.columns.set_row(key, decoded)
        self.ids[key] = id
        self.keys[id] = key
        self.metadata[key] = text
        self.live[key] = True

    def release(self, key: int) -> None:
        """Free ``key`` (its id was deleted)."""
        item = self.ids[key]
        if item is None:
            return
        del self.keys[item]
        self.ids[key] = None
        self.metadata[key] = "{}"
        self.live[key] = False
        self.columns.clear_row(key)
        heapq.heappush(self._free, key)

    def finish_loading(self) -> None:
        """After assigning keys out of order (a load): every unused key below the
        capacity becomes free."""
        self._free = [key for key, item in enumerate(self.ids) if item is None]
        heapq.heapify(self._free)

    def matching(self, conditions: Sequence[Condition]) -> np.ndarray[Any, Any]:
        """Boolean mask over keys of the live ids satisfying every condition."""
        rows = len(self.ids)
        return np.asarray(evaluate_mask(conditions, self.columns, rows) & self.live[:rows])
