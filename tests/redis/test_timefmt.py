"""The store's fast timestamp formatter writes exactly the text of clock.utc_iso."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory_resources.clock import utc_iso
from memory_resources.stores.redis.timefmt import iso_utc, iso_utc_and_later


@settings(max_examples=400, deadline=None)
@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_iso_utc_matches_utc_iso(epoch: float) -> None:
    """For any timestamp up to 2100 both formatters give the same string."""
    assert iso_utc(epoch) == utc_iso(epoch)


def test_iso_utc_rounding_edges() -> None:
    """Fractions that round up to a whole second, or sit exactly on a half microsecond,
    carry and round like datetime."""
    edges = [1_700_000_000.9999996, 1_700_000_000.0000005, 0.0, 1_699_999_999.5]
    edges += [1_700_000_000 + k / 1e6 + 5e-7 for k in range(0, 1_000_000, 997)]
    for epoch in edges:
        assert iso_utc(epoch) == utc_iso(epoch), epoch


@pytest.mark.parametrize("ttl", [None, 1, 3600, 86_400 * 400])
def test_iso_utc_and_later_is_exactly_ttl_apart(ttl: int | None) -> None:
    """The first is utc_iso's text; the later one is exactly ``ttl`` seconds after it."""
    for epoch in (1_800_000_000.0, 1_800_000_000.123456, 1_764_000_000.9999996, 0.5):
        first, later = iso_utc_and_later(epoch, ttl)
        assert first == utc_iso(epoch)
        if ttl is None:
            assert later is None
        else:
            assert later is not None
            gap = dt.datetime.fromisoformat(later) - dt.datetime.fromisoformat(first)
            assert gap == dt.timedelta(seconds=ttl)
