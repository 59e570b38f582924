"""Crash safety of the file persistence: a real process killed by SIGKILL mid-write."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from memory_resources.stores.numpy_index import FileVectorPersistence, NumpyVectorIndex

from ._crash_worker import DIM, expected_batch, expected_state

ROOT = Path(__file__).resolve().parents[2]


def acceptable_states(last_printed: int) -> list[dict[str, np.ndarray]]:
    """States a kill after batch ``last_printed`` was acknowledged may leave: that batch,
    the next batch's upsert without its delete, or the whole next batch."""
    done = expected_state(last_printed + 1)
    ids, vectors, _ = expected_batch(last_printed + 1)
    partial = {**done, **dict(zip(ids, vectors, strict=True))}
    return [done, partial, expected_state(last_printed + 2)]


def run_and_kill(directory: Path, batches: int, extra_delay: float) -> int:
    """Start the worker, SIGKILL it after it acknowledged ``batches`` batches (+ a delay);
    return the last acknowledged batch number."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.vector._crash_worker", str(directory)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    last = -1
    try:
        while last < batches - 1:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"worker exited early with {proc.wait()}")
            if line.strip().isdigit():  # other lines are log output
                last = int(line)
        time.sleep(extra_delay)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    rest = [line for line in proc.stdout.read().split("\n") if line.strip().isdigit()]
    proc.stdout.close()
    return int(rest[-1]) if rest else last


@pytest.mark.slow
def test_sigkill_mid_write_leaves_a_loadable_consistent_index(tmp_path: Path) -> None:
    """After SIGKILL at random points (appends and compactions), the index loads and holds
    exactly the state of a whole number of acknowledged writes."""
    rng = random.Random(20261126)
    for round_ in range(4):
        directory = tmp_path / f"round{round_}"
        last = run_and_kill(directory, rng.randint(3, 14), rng.uniform(0.0, 0.05))
        index = NumpyVectorIndex(DIM, "euclidean", "crash",
                                 persistence=FileVectorPersistence(directory))
        universe = [item for i in range(last + 3) for item in expected_batch(i)[0]]
        loaded = {item: index.get(item) for item in universe}
        present = {item: got for item, got in loaded.items() if got is not None}
        matched = False
        for state in acceptable_states(last):
            if set(state) == set(present) and all(
                np.array_equal(present[item][0], vector) for item, vector in state.items()
            ):
                matched = True
        assert matched, f"round {round_}: {len(present)} rows match no committed state"
        assert index.count() == len(present)
        assert all(got[1]["batch"] == int(item[1:].split("_")[0])
                   for item, got in present.items())
        # the recovered directory accepts new writes and keeps them
        index.upsert(["after-crash"], np.ones((1, DIM), dtype=np.float32))
        index.close()
        reopened = NumpyVectorIndex(DIM, "euclidean", "crash",
                                    persistence=FileVectorPersistence(directory))
        assert reopened.count() == len(present) + 1
