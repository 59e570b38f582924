"""A faster twin of :func:`memory_resources.clock.utc_iso` for the hot write path.

It formats each whole second once (a small cache: "now" and "now + ttl" are both hot)
and appends the microseconds, with the same rounding as ``datetime.fromtimestamp``
(half-even on the fraction), so the text is identical to ``utc_iso`` (checked by a test
over many timestamps).
"""

from __future__ import annotations

import math
import time

from ...clock import utc_iso

_MAX_SECONDS = 253_402_300_800  # 10000-01-01: beyond, strftime's %Y is not 4 digits
_CACHE_SIZE = 64
_cache: dict[int, str] = {}


def iso_utc(epoch_seconds: float) -> str:
    """``epoch_seconds`` as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00`` (same text as utc_iso)."""
    frac, whole = math.modf(epoch_seconds)
    seconds = int(whole)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        seconds += 1
        micros -= 1_000_000
    elif micros < 0:
        seconds -= 1
        micros += 1_000_000
    if not 0 <= seconds < _MAX_SECONDS:
        return utc_iso(epoch_seconds)
    prefix = _cache.get(seconds)
    if prefix is None:
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        prefix = _cache[seconds] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{prefix}.{micros:06d}+00:00"
