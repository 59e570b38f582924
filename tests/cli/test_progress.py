"""Long commands show a spinner on stderr only when stderr is a terminal."""

from __future__ import annotations

import time

import pytest

from memory_resources.cli.progress import working


def test_no_spinner_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Captured (not a terminal) stderr gets nothing from the progress display."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    with working("applying migrations"):
        pass
    assert capsys.readouterr().err == ""


def test_spinner_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal (forced through rich's FORCE_COLOR) the step is shown on stderr and
    stdout stays clean."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    with working("applying migrations"):
        time.sleep(0.3)
    captured = capsys.readouterr()
    assert "applying migrations" in captured.err
    assert captured.out == ""
