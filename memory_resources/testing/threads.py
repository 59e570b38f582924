"""Run workers in threads and bring what they raised back to the test."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_in_threads(*targets: Callable[[], object]) -> list[BaseException]:
    """Run each target in its own thread, all started before any is joined; returns what
    they raised (empty when all finished), so a failed assertion in a worker fails the
    test through an ``assert errors == []`` in the test itself."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as exc:  # returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
