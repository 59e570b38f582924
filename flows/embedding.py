"""Deterministic text embeddings for the examples: hashed bag of words, no model download.

Each lower-cased word (and word bigram) is hashed (blake2b) to a dimension and a sign;
the vector is L2-normalised. Texts sharing words get a high cosine similarity, which is
enough to demonstrate retrieval. Swap in a real embedding model for production.
"""

from __future__ import annotations

import hashlib
import itertools
import re

DIMENSION = 768
"""The default ``VectorConfig.dimension``."""

_WORD = re.compile(r"[a-z0-9]+")


def _slot(token: str, dimension: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dimension, 1.0 if (value >> 63) & 1 else -1.0


def embed(text: str, dimension: int = DIMENSION) -> list[float]:
    """The embedding of ``text`` (a unit vector; a text with no words maps to one fixed axis)."""
    words = _WORD.findall(text.lower())
    tokens = words + [f"{a}_{b}" for a, b in itertools.pairwise(words)]
    vector = [0.0] * dimension
    for token in tokens:
        index, sign = _slot(token, dimension)
        vector[index] += sign
    norm = sum(v * v for v in vector) ** 0.5
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]
