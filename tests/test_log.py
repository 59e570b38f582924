"""The library's loggers skip disabled levels early and still emit enabled events with
their key=value fields through the stdlib logger; once the application configures
structlog, its configuration is used as is."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest
import structlog

from memory_resources.log import get_logger
from memory_resources.runinfo import acting_as


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


@pytest.fixture
def app_structlog() -> Iterator[None]:
    """Whatever a test configures in structlog is undone afterwards."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def test_application_json_configuration_is_used(app_structlog: None) -> None:
    """A logger made before the application configures structlog for JSON renders its
    events with that configuration, the acting run ids included."""
    log = get_logger(f"memory_resources.test_{uuid.uuid4().hex[:8]}", component="lock")
    structlog.configure(processors=[structlog.processors.JSONRenderer(sort_keys=True)],
                        logger_factory=structlog.ReturnLoggerFactory())
    with acting_as("flow-1", "task-2"):
        line = log.warning("lock lost", lock_name="x")
    assert json.loads(line) == {"event": "lock lost", "component": "lock", "lock_name": "x",
                                "flow_run_id": "flow-1", "task_run_id": "task-2"}


def test_application_level_filter_applies(app_structlog: None) -> None:
    """The application's structlog level filter drops the library's debug events."""
    log = get_logger(f"memory_resources.test_{uuid.uuid4().hex[:8]}")
    structlog.configure(processors=[structlog.processors.JSONRenderer()],
                        logger_factory=structlog.ReturnLoggerFactory(),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    assert log.debug("hidden") is None
    assert json.loads(log.bind(n=1).info("shown")) == {"event": "shown", "n": 1}


def test_seed_configuration_snippet_takes_effect(app_structlog: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The seed's ``structlog.configure(processors=[ConsoleRenderer()])`` snippet renders the
    library's events with the console renderer on stdout."""
    log = get_logger(f"memory_resources.test_{uuid.uuid4().hex[:8]}")
    structlog.configure(processors=[structlog.dev.ConsoleRenderer(colors=False)])
    log.info("context saved", context_id="c-1")
    out = capsys.readouterr().out
    assert "context saved" in out and "context_id=c-1" in out
    assert "event=" not in out


def test_unconfigured_output_stays_key_value(app_structlog: None,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """With structlog left alone (after a reset) events are key=value lines on the stdlib
    logger, carrying the run ids as record attributes for Prefect's handler."""
    name = f"memory_resources.test_{uuid.uuid4().hex[:8]}"
    with caplog.at_level(logging.INFO, logger=name), acting_as("flow-1", None):
        get_logger(name).warning("outbox full", size=3)
    [record] = [r for r in caplog.records if r.name == name]
    assert record.getMessage() == "event='outbox full' size=3 flow_run_id='flow-1'"
    assert record.flow_run_id == "flow-1"  # type: ignore[attr-defined]
