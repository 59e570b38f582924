"""Crash safety of the file persistence (numpy and usearch indexes): a real process killed
by SIGKILL mid-write."""

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

from ._crash_worker import DIM, expected_batch, expected_state, open_index

ROOT = Path(__file__).resolve().parents[2]


def acceptable_states(last_printed: int) -> list[dict[str, np.ndarray]]:
    """States a kill after batch ``last_printed`` was acknowledged may leave: that batch,
    the next batch's upsert without its delete, or the whole next batch."""
    done = expected_state(last_printed + 1)
    ids, vectors, _ = expected_batch(last_printed + 1)
    partial = {**done, **dict(zip(ids, vectors, strict=True))}
    return [done, partial, expected_state(last_printed + 2)]


def run_and_kill(directory: Path, batches: int, extra_delay: float, backend: str) -> int:
    """Start the worker, SIGKILL it after it acknowledged ``batches`` batches (+ a delay);
    return the last acknowledged batch number."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.vector._crash_worker", str(directory), backend],
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
@pytest.mark.parametrize("backend", ["numpy", "usearch"])
def test_sigkill_mid_write_leaves_a_loadable_consistent_index(
    tmp_path: Path, backend: str
) -> None:
    """After SIGKILL at random points (appends, compactions, usearch graph saves), the index
    loads and holds exactly the state of a whole number of acknowledged writes; usearch's
    graph (which ``get`` and ``query`` read) agrees with that state."""
    rng = random.Random(20261126)
    for round_ in range(4):
        directory = tmp_path / f"round{round_}"
        last = run_and_kill(directory, rng.randint(3, 14), rng.uniform(0.0, 0.05), backend)
        index = open_index(str(directory), backend, 64 * 1024 * 1024)
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
        some = next(iter(present))
        found = index.query(present[some][0], top_k=10)
        assert found[0]["id"] == some and len(found) == min(10, len(present))
        assert all(match["id"] in present for match in found)
        # the recovered directory accepts new writes and keeps them
        index.upsert(["after-crash"], np.ones((1, DIM), dtype=np.float32))
        index.close()
        reopened = open_index(str(directory), backend, 64 * 1024 * 1024)
        assert reopened.count() == len(present) + 1
        assert reopened.get("after-crash") is not None
