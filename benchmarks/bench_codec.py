"""The codec (on every write's and read's path) vs plain ``json``, in one process.

Run: ``python benchmarks/bench_codec.py [--rounds N] [--out FILE]``.

"raw" is what a store without the codec would do: ``json.dumps(value, separators=(",",
":"), ensure_ascii=False)`` and ``json.loads(text)`` (raw cannot store datetimes, so the
datetime case's raw side encodes the same value with ``default=str``). The codec also
escapes tag-shaped user keys, checks the depth limit, sizes the payload and restores tagged
types. Codec and raw alternate in short rounds so both run under the same machine load; the
best round per side is reported (microseconds per call), which filters load spikes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memory_resources import codec

SMALL = {"user_id": "u1", "turn": 3, "messages": [{"role": "user", "content": "hello there"}],
         "score": 0.5, "ok": True}
CASES: list[tuple[str, Any, int]] = [
    ("small context (100 B)", SMALL, 2_000),
    ("with a datetime", {**SMALL, "when": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)},
     2_000),
    ("tag-shaped user dict (escaped)", {**SMALL, "v": {"__type__": "set", "value": [1]}},
     2_000),
    ("100 nested dicts (10 kB, depth walk)", {"items": [{**SMALL, "i": i} for i in range(100)]},
     50),
]


def _raw_dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _best(fn: Callable[[], Any], number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6


def _round(module: Any, value: Any, text: str, raw_text: str, number: int
           ) -> tuple[float, float, float, float]:
    return (
        _best(lambda: module.encode(value, max_bytes=None), number),
        _best(lambda: _raw_dumps(value), number),
        _best(lambda: module.decode(text), number),
        _best(lambda: json.loads(raw_text), number),
    )


def measure(rounds: int, module: Any = codec) -> list[tuple[str, int, float, float, float, float]]:
    """(case, bytes, codec encode, raw encode, codec decode, raw decode) in microseconds."""
    rows = []
    for name, value, number in CASES:
        text = codec.encode(value, max_bytes=None)
        raw_text = _raw_dumps(value)
        best = [float("inf")] * 4
        for _ in range(rounds):
            timings = _round(module, value, text, raw_text, number)
            best = [min(a, b) for a, b in zip(best, timings, strict=True)]
        rows.append((name, len(text), *best))
    return rows


def load_baseline(path: Path) -> Any:
    """An older ``codec.py`` (e.g. ``git show REV:memory_resources/codec.py``) as a module."""
    spec = importlib.util.spec_from_file_location("memory_resources.codec_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def compare(rounds: int, baseline: Any) -> str:
    """Baseline and current codec alternating round by round: best encode/decode each."""
    lines = ["", "| value | encode (before / after) | decode (before / after) |",
             "|---|---:|---:|"]
    for name, value, number in CASES:
        text = codec.encode(value, max_bytes=None)
        best: dict[str, list[float]] = {"before": [float("inf")] * 2,
                                        "after": [float("inf")] * 2}
        for _ in range(rounds):
            for label, module in (("before", baseline), ("after", codec)):
                enc, _, dec, _ = _round(module, value, text, text, number)
                best[label] = [min(best[label][0], enc), min(best[label][1], dec)]
        (be, bd), (ae, ad) = best["before"], best["after"]
        lines.append(f"| {name} | {be:.2f} / {ae:.2f} µs | {bd:.2f} / {ad:.2f} µs |")
    return "\n".join(lines) + "\n"


def report(rows: list[tuple[str, int, float, float, float, float]]) -> str:
    lines = [
        "# Codec: encode/decode vs plain json",
        "",
        f"Python {sys.version.split()[0]}, {platform.machine()}; best of the rounds, "
        "microseconds per call (`python benchmarks/bench_codec.py`).",
        "",
        "| value | bytes | encode (codec / json) | decode (codec / json) |",
        "|---|---:|---:|---:|",
    ]
    for name, size, enc, raw_enc, dec, raw_dec in rows:
        lines.append(f"| {name} | {size} | {enc:.2f} / {raw_enc:.2f} µs "
                     f"({enc / raw_enc:.2f}x) | {dec:.2f} / {raw_dec:.2f} µs "
                     f"({dec / raw_dec:.2f}x) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="an older codec.py to compare with, interleaved")
    args = parser.parse_args()
    text = report(measure(args.rounds))
    if args.baseline is not None:
        text += compare(args.rounds, load_baseline(args.baseline))
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
