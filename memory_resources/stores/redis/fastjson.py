"""Hot-path twins of :func:`memory_resources.codec.encode` / ``decode``.

``encode`` reuses one prebuilt encoder instead of building a ``JSONEncoder`` per call and
falls back to the codec for anything it cannot settle alone (a value that fails to encode,
a payload near ``max_bytes``), so every result and every error is the codec's own.
``decode`` skips the tag hook when the text cannot hold a tagged value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.scanner import make_scanner
from typing import Any

from ...codec import _default
from ...codec import decode as codec_decode
from ...codec import encode as codec_encode

_ENCODER = json.JSONEncoder(default=_default, allow_nan=False, ensure_ascii=False,
                            separators=(",", ":"))
"""Same options as :func:`codec.encode` (which passes them to ``json.dumps`` per call)."""

_SCAN: Callable[[str, int], tuple[Any, int]] = make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]  # typeshed types the argument oddly
"""The C scanner ``JSONDecoder.decode`` uses, without its two whitespace regex passes."""


def encode(value: Any, *, field: str, max_bytes: int | None) -> str:
    """``codec.encode(value, field=field, max_bytes=max_bytes)``, faster when it succeeds."""
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        return codec_encode(value, field=field, max_bytes=max_bytes)  # raises the codec's error
    if max_bytes is not None and len(text) * 4 > max_bytes:
        return codec_encode(value, field=field, max_bytes=max_bytes)
    return text


def decode(text: str) -> Any:
    """``codec.decode(text)``; without the tag hook when no ``"__type__"`` key can occur
    (the literal is absent and there is no ``\\u`` escape that could spell it). The fast
    path scans one JSON value spanning the whole text; anything else (whitespace, trailing
    data, invalid JSON) goes to the codec, which returns or raises exactly as before."""
    if "__type__" not in text and "\\u" not in text:
        try:
            value, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            return codec_decode(text)
        if end == len(text):
            return value
    return codec_decode(text)
