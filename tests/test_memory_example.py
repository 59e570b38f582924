"""examples/memory_example.py (the specification's examples) runs end to end on the
embedded default, twice on the same file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "memory_example.py"


def test_memory_example_runs_on_the_embedded_default(tmp_path: Path) -> None:
    """The example exits 0, prints each section's result and ends with "done", on a fresh
    home and again on the same home; no backend environment variable is used."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MEMORY_RESOURCES_")}
    env["MEMORY_RESOURCES_HOME"] = str(tmp_path / "home")
    for _ in range(2):
        result = subprocess.run([sys.executable, str(EXAMPLE)], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "Connected to all memory adapters"
        assert "User ID: user_123" in lines
        assert "task_001 output: {'result': 'success', 'data': [1, 2, 3]}" in lines
        assert "documents only: ['doc_001']" in lines
        assert "refused: context_id - context_id: must not be empty" in lines
        assert "lock not acquired: busy" in lines
        assert "health: healthy" in lines
        assert "Vector embeddings: 1" in lines
        assert lines[-1] == "done"
    assert (tmp_path / "home" / "memory.db").is_file()
