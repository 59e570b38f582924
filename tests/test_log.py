"""The library's loggers skip disabled levels early and still emit enabled events with
their key=value fields through the stdlib logger."""

from __future__ import annotations

import logging
import uuid

import pytest

from memory_resources.log import get_logger


def test_disabled_levels_emit_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """With the stdlib logger at WARNING, info and debug (also from a bound logger) produce
    no record; warning does."""
    name = f"memory_resources.test_{uuid.uuid4().hex[:8]}"
    logging.getLogger(name).setLevel(logging.WARNING)
    log = get_logger(name)
    with caplog.at_level(logging.WARNING, logger=name):
        log.info("hidden info", a=1)
        log.bind(b=2).debug("hidden debug")
        log.warning("shown", c=3)
    assert [r.getMessage() for r in caplog.records if r.name == name] == [
        "event='shown' c=3"]


def test_enabled_levels_render_fields(caplog: pytest.LogCaptureFixture) -> None:
    """With the stdlib logger at DEBUG, info and a bound debug are rendered as key=value."""
    name = f"memory_resources.test_{uuid.uuid4().hex[:8]}"
    log = get_logger(name)
    with caplog.at_level(logging.DEBUG, logger=name):
        log.info("lock acquired", lock_name="x", fencing_token=7)
        log.bind(session="s").debug("step", n=1)
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == name] == [
        (logging.INFO, "event='lock acquired' lock_name='x' fencing_token=7"),
        (logging.DEBUG, "event='step' session='s' n=1"),
    ]
