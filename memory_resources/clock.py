"""One seam for time, so TTL, lease and backoff code can be tested exactly."""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock and monotonic time in seconds."""

    def time(self) -> float:
        """Seconds since the epoch (wall clock), used for stored timestamps and expiry."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, used for timeouts and lock validity."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock tests move by hand; ``sleep`` advances it instead of blocking."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        self._now += seconds
        self._mono += seconds


SYSTEM_CLOCK = SystemClock()


def utc_iso(epoch_seconds: float) -> str:
    """Format epoch seconds as an ISO-8601 UTC timestamp with microseconds."""
    return dt.datetime.fromtimestamp(epoch_seconds, tz=dt.timezone.utc).isoformat(
        timespec="microseconds"
    )


def to_datetime(value: str | float | dt.datetime) -> dt.datetime:
    """Read an ISO string, epoch seconds or datetime as an aware UTC datetime."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, (int, float)):
        parsed = dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    else:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)
