"""Make captured values safe to store: secrets masked, oversized values truncated.

Flow parameters reach the hooks as Python objects (from the run context) or as the JSON
Prefect stored for the run. Either way, before anything is written:

* ``SecretStr`` / ``SecretBytes`` values become ``MASK``;
* pydantic models (Prefect blocks included) are dumped field by field, their secret fields
  masked;
* a plain dict passed for a parameter annotated with a model (e.g. a block passed as a
  dict, which Prefect itself stores unmasked) has the keys of that model's secret fields
  masked, recursively through nested models;
* a parameter, dict key, model or dataclass field whose NAME names a secret (``password``,
  ``token``, ``api_key``, ``secret``, ``dsn``, ``Authorization``, ``X-Api-Key``,
  ``clientSecret`` ...) is masked whatever its annotation, top-level parameters included;
* a value whose ANNOTATION is ``SecretStr``/``SecretBytes`` is masked even when it arrives
  as a plain string (a deployment run's parameters come as JSON);
* in every string: the password of a URL (``postgresql://u:pw@h/db`` becomes
  ``postgresql://u:**********@h/db``), ``password=...``-style pairs (libpq DSNs, query
  strings) and the credential of ``Bearer``/``Basic``/``Token`` authorization values;
* values the codec cannot encode become ``{"__unserializable__": TYPE, "repr": ...}``;
* a value whose encoded size passes the limit becomes
  ``{"__truncated__": true, "size": N, "preview": "<first bytes of the JSON>"}``.

This module does not import Prefect.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from ..codec import decode, encode
from ..errors import SerializationError

MASK = "**********"
"""What a secret is replaced with (Prefect's own mask)."""

SECRET_KEY_PATTERN = re.compile(
    r"(^|_)(password|passwd|pwd|secret|secrets|token|api_?key|apikey|access_?key"
    r"|private_?key|credentials?|dsn|auth|authorization|cookie|set_cookie"
    r"|client_?secret|signature|passphrase)($|_)",
    re.IGNORECASE,
)
"""Names masked whatever their annotation (``dsn`` may embed a password), matched on the
name in snake case (``X-Api-Key``, ``clientSecret`` become ``x_api_key``,
``client_secret``)."""

_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@?#]*:)([^\s@/?#]+)(@)")
_SECRET_PAIR = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api_?key|apikey|access_?token|client_secret"
    r"|sslpassword)(\s*=\s*)('[^']*'|\"[^\"]*\"|[^\s&;,]+)")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)([A-Za-z0-9._~+/=\-]{6,})")
_AUTH_VALUE = re.compile(
    r"(?i)^(\s*(?:basic|token|digest|negotiate|apikey)\s+)([A-Za-z0-9._~+/=\-]{6,})(\s*)$")
"""An ``Authorization`` header value (the whole string); ``Bearer`` tokens anywhere."""
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def secret_name(name: str) -> bool:
    """True if ``name`` (a parameter, key or field name) names a secret."""
    snake = re.sub(r"[^a-z0-9]+", "_", _CAMEL.sub("_", name).lower())
    return SECRET_KEY_PATTERN.search(snake) is not None


def mask_text(text: str) -> str:
    """``text`` with URL passwords, ``password=...`` pairs and authorization credentials
    replaced by :data:`MASK` (other text kept)."""
    if ":" in text:
        text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    if "=" in text:
        text = _SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    if " " in text:
        text = _BEARER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
        text = _AUTH_VALUE.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return text


def has_credentials(value: Any) -> bool:
    """True if ``value`` holds a secret: a Secret type, a secret-named key with a value,
    or a string with a URL password / secret pair / authorization credential."""
    if isinstance(value, (SecretStr, SecretBytes)):
        return True
    if isinstance(value, str):
        return mask_text(value) != value
    if isinstance(value, Mapping):
        return any((isinstance(k, str) and secret_name(k) and v not in (None, ""))
                   or has_credentials(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_credentials(v) for v in value)
    return False

_MAX_DEPTH = 32
_PREVIEW_CHARS = 256


def _secret_annotation(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    origin = typing.get_origin(annotation)
    if isinstance(origin, type) and issubclass(origin, (SecretStr, SecretBytes)):
        return True
    return any(_secret_annotation(arg) for arg in typing.get_args(annotation))


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic model classes an annotation refers to (through Optional/Union/list)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_model_classes(arg))
    return found


def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is typing.Union or origin is types.UnionType


def mask_value(value: Any, annotation: Any = None, *, _depth: int = 0) -> Any:
    """A copy of ``value`` with every secret replaced by :data:`MASK`.

    ``annotation`` (the parameter's type hint, if known) lets a plain dict given for a
    model-typed parameter be masked by that model's secret fields.
    """
    if _depth > _MAX_DEPTH:
        return value
    depth = _depth + 1
    if isinstance(value, (SecretStr, SecretBytes)):
        return MASK
    if value is not None and annotation is not None and _secret_annotation(annotation):
        return MASK  # e.g. a SecretStr parameter given a plain string by a deployment run
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, BaseModel):
        return _mask_model(value, depth)
    if isinstance(value, Mapping):
        if "$ref" in value and len(value) == 1:
            return dict(value)  # a block reference holds no secret
        return _mask_mapping(value, _model_classes(annotation), depth)
    if isinstance(value, (list, tuple)):
        item_annotation = _item_annotation(annotation)
        return [mask_value(item, item_annotation, _depth=depth) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: MASK
            if secret_name(f.name) and getattr(value, f.name) is not None
            else mask_value(getattr(value, f.name), f.type, _depth=depth)
            for f in dataclasses.fields(value)
        }
    return value


def _item_annotation(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if _is_union(annotation) or not args:
        return None
    return args[0]


def _mask_model(model: BaseModel, depth: int) -> dict[str, Any]:
    fields = type(model).model_fields
    result: dict[str, Any] = {}
    for name, info in fields.items():
        value = getattr(model, name, None)
        if value is not None and (_secret_annotation(info.annotation) or secret_name(name)):
            result[name] = MASK
        else:
            result[name] = mask_value(value, info.annotation, _depth=depth)
    block_type = getattr(type(model), "_block_type_slug", None)
    if block_type:
        result.setdefault("block_type_slug", block_type)
    return result


def _mask_mapping(
    mapping: Mapping[Any, Any], models: list[type[BaseModel]], depth: int
) -> dict[Any, Any]:
    secret_keys: set[str] = set()
    nested: dict[str, Any] = {}
    for model in models:
        for name, info in model.model_fields.items():
            keys = {name} | ({info.alias} if info.alias else set())
            if _secret_annotation(info.annotation):
                secret_keys |= keys
            else:
                for key in keys:
                    nested[key] = info.annotation
    result: dict[Any, Any] = {}
    for key, item in mapping.items():
        if item is not None and isinstance(key, str) and (
            key in secret_keys or secret_name(key)
        ):
            result[key] = MASK
        else:
            result[key] = mask_value(item, nested.get(key) if isinstance(key, str) else None,
                                     _depth=depth)
    return result


def _is_block_ref(value: Any) -> bool:
    return isinstance(value, Mapping) and "$ref" in value and len(value) == 1


def safe_value(value: Any, *, field: str, max_bytes: int | None) -> Any:
    """``value`` as plain JSON the codec accepts, truncated to ``max_bytes`` when larger.

    Never raises for a bad value: what cannot be encoded is described instead.
    """
    try:
        text = encode(value, field=field, max_bytes=None, reject_nul=True)
    except SerializationError as exc:
        return {
            "__unserializable__": type(value).__name__,
            "error": str(exc)[:_PREVIEW_CHARS],
            "repr": _safe_repr(value),
        }
    size = len(text.encode("utf-8"))
    if max_bytes is not None and size > max_bytes:
        preview_chars = max(0, min(_PREVIEW_CHARS, max_bytes // 2))
        return {"__truncated__": True, "size": size, "limit": max_bytes,
                "preview": text[:preview_chars]}
    return decode(text)  # the value as the store will read it back (tags restored)


def _safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break capture
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return text.replace("\x00", "")[:_PREVIEW_CHARS]


def capture_parameters(
    parameters: Mapping[str, Any],
    annotations: Mapping[str, Any] | None = None,
    *,
    max_bytes: int | None,
) -> dict[str, Any]:
    """Masked, codec-safe parameters; each one and the whole set bounded by ``max_bytes``.

    A parameter larger than the limit is truncated on its own; if the set is still larger,
    the largest remaining parameters are truncated until it fits.
    """
    annotations = annotations or {}
    result: dict[str, Any] = {}
    for name, value in parameters.items():
        if value is not None and secret_name(str(name)) and not _is_block_ref(value):
            masked: Any = MASK
        else:
            masked = mask_value(value, annotations.get(str(name)))
        result[str(name)] = safe_value(masked, field=f"parameters[{name!r}]",
                                       max_bytes=max_bytes)
    if max_bytes is None:
        return result
    def entry_size(name: str, item: Any) -> int:  # '"name":value,' in the encoded object
        return len(encode(name, max_bytes=None).encode()) + len(
            encode(item, max_bytes=None).encode()) + 2

    sizes = {name: entry_size(name, item) for name, item in result.items()}
    total = 2 + sum(sizes.values())
    for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if total <= max_bytes:
            break
        current = result[name]
        was_truncated = isinstance(current, dict) and current.get("__truncated__")
        stub = {"__truncated__": True, "limit": max_bytes,
                "size": current["size"] if was_truncated else sizes[name]}
        saved = sizes[name] - entry_size(name, stub)
        if saved > 0:
            total -= saved
            result[name] = stub
    return result


__all__ = [
    "MASK",
    "SECRET_KEY_PATTERN",
    "capture_parameters",
    "has_credentials",
    "mask_text",
    "mask_value",
    "safe_value",
    "secret_name",
]
