"""Quorum arithmetic of Redlock: what an answer means, when a round is decided, and when
the missing answers (not the refusals) are what made a quorum impossible."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...errors import BackendAuthenticationError, BackendError, BackendUnavailableError
from .errors import BACKEND
from .nodes import PENDING


def granted(result: Any) -> bool:
    """An acquire answered with a fencing counter."""
    return type(result) is int


def confirmed(result: Any) -> bool:
    """A release / extend / EXISTS answered 1."""
    return result == 1 and type(result) is int


def until(good: Callable[[Any], bool], need: int) -> Callable[[list[Any]], bool]:
    """``done`` of a fan-out: ``need`` good answers, or too many others to ever get them."""
    def done(results: list[Any]) -> bool:
        ok = bad = 0
        for result in results:
            if result is PENDING:
                continue
            if good(result):
                ok += 1
            else:
                bad += 1
        return ok >= need or len(results) - bad < need
    return done


def check_reachable(results: Sequence[object], quorum: int, action: str,
                    good: Callable[[Any], bool]) -> None:
    """Raise when failed nodes leave fewer than ``quorum`` able to answer, unless the
    nodes that answered no already decided (a node not waited for is not a fault)."""
    nodes = len(results)
    errors = [r for r in results if isinstance(r, BackendError)]
    refused = sum(1 for r in results
                  if r is not PENDING and not isinstance(r, BackendError) and not good(r))
    if nodes - len(errors) >= quorum or nodes - refused < quorum:
        return
    for error in errors:
        if isinstance(error, BackendAuthenticationError):
            raise error
    if len(errors) == 1:
        raise errors[0]
    detail = "; ".join(str(e) for e in errors)
    raise BackendUnavailableError(
        BACKEND, f"{action}: {len(errors)} of {nodes} lock nodes failed, "
        f"quorum {quorum} impossible ({detail})")
