"""Captured parameters are masked, codec-safe and bounded (no Prefect run needed)."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any, Optional

from pydantic import BaseModel, SecretStr

from memory_resources.capture.masking import MASK, capture_parameters, mask_value, safe_value
from memory_resources.codec import encode


class Creds(BaseModel):
    user: str
    password: SecretStr


class Conn(BaseModel):
    host: str
    creds: Creds
    pool_secret: Optional[SecretStr] = None  # noqa: UP045  (Optional on purpose)


def test_secretstr_value_is_masked() -> None:
    """A SecretStr parameter is stored as the mask, never its value."""
    out = capture_parameters({"token": SecretStr("s3cr3t"), "n": 1}, max_bytes=None)
    assert out == {"token": MASK, "n": 1}
    assert "s3cr3t" not in encode(out)


def test_model_instance_secret_fields_are_masked_recursively() -> None:
    """Secret fields of a model instance, also nested ones, are masked; others kept."""
    conn = Conn(host="db", creds=Creds(user="ada", password=SecretStr("pw1")),
                pool_secret=SecretStr("pw2"))
    masked = mask_value(conn)
    assert masked == {"host": "db", "creds": {"user": "ada", "password": MASK},
                      "pool_secret": MASK}


def test_model_passed_as_plain_dict_is_masked_by_annotation() -> None:
    """A dict given for a model-typed parameter has that model's secret keys masked."""
    raw: dict[str, Any] = {"host": "db", "creds": {"user": "ada", "password": "pw1"},
                           "pool_secret": "pw2"}
    out = capture_parameters({"conn": raw}, {"conn": Optional[Conn]},  # noqa: UP045
                             max_bytes=None)
    assert out["conn"] == {"host": "db", "creds": {"user": "ada", "password": MASK},
                           "pool_secret": MASK}
    assert raw["creds"]["password"] == "pw1", "the caller's dict is not modified"


def test_secret_looking_keys_are_masked_without_annotation() -> None:
    """Keys such as password, api_key, dsn are masked even in an unannotated dict."""
    out = mask_value({"password": "x", "api_key": "y", "dsn": "postgres://u:p@h/d",
                      "max_tokens": 5, "author": "me", "nested": [{"auth_token": "z"}]})
    assert out == {"password": MASK, "api_key": MASK, "dsn": MASK, "max_tokens": 5,
                   "author": "me", "nested": [{"auth_token": MASK}]}


def test_block_reference_is_kept() -> None:
    """A {"$ref": ...} parameter holds no secret and is kept as given."""
    ref = {"$ref": {"block_document_id": "abc"}}
    assert mask_value(ref) == ref


def test_unserializable_value_is_described_not_raised() -> None:
    """A value the codec refuses becomes a description naming its type."""
    with socket.socket() as sock:
        out = safe_value({"s": sock}, field="x", max_bytes=None)
    assert out["__unserializable__"] == "dict"
    assert "socket" in out["error"]


def test_codec_types_are_kept() -> None:
    """Datetimes and other codec types are stored in their tagged JSON form."""
    when = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    out = capture_parameters({"when": when}, max_bytes=None)
    assert out["when"] == {"__type__": "datetime", "value": when.isoformat()}


def test_large_parameter_is_truncated_and_total_bounded() -> None:
    """One oversized parameter is truncated; the set as a whole fits the limit."""
    params = {"small": "ok", "big": "x" * 5000, "medium1": "y" * 600, "medium2": "z" * 600}
    out = capture_parameters(params, max_bytes=1000)
    assert out["small"] == "ok"
    assert out["big"]["__truncated__"] is True and out["big"]["size"] > 5000
    assert len(encode(out, max_bytes=None).encode()) <= 1000
    truncated = [k for k, v in out.items() if isinstance(v, dict) and v.get("__truncated__")]
    assert "big" in truncated and len(truncated) >= 2
