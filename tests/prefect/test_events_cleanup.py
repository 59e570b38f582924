"""The test harness closes Prefect's events client after each test (tests/fixtures/prefect)."""

from __future__ import annotations

import pytest

from tests.fixtures.prefect import stop_prefect_events


def _live_events_workers() -> list[object]:
    from prefect.events.worker import EventsWorker

    instances = EventsWorker._instances.values()  # type: ignore[misc]
    return [w for w in instances if isinstance(w, EventsWorker) and not w._stopped]


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_stop_prefect_events_leaves_no_events_worker_running() -> None:
    """A flow run starts Prefect's events worker (an open websocket whose keepalive pings
    draw from the global ``random``); stop_prefect_events drains it, so it cannot disturb
    Hypothesis in a later test."""
    from prefect import flow

    @flow
    def tiny() -> int:
        """Return 1."""
        return 1

    assert tiny() == 1
    assert _live_events_workers()
    stop_prefect_events()
    assert _live_events_workers() == []
