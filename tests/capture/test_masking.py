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
    """Datetimes and other codec types keep their type (the store writes them tagged and
    reads them back as datetimes); a user dict shaped like a tag stays a dict."""
    when = dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)
    tag_shaped = {"__type__": "datetime", "value": "zzz"}
    out = capture_parameters({"when": when, "shaped": tag_shaped}, max_bytes=None)
    assert out["when"] == when and out["shaped"] == tag_shaped


def test_large_parameter_is_truncated_and_total_bounded() -> None:
    """One oversized parameter is truncated; the set as a whole fits the limit."""
    params = {"small": "ok", "big": "x" * 5000, "medium1": "y" * 600, "medium2": "z" * 600}
    out = capture_parameters(params, max_bytes=1000)
    assert out["small"] == "ok"
    assert out["big"]["__truncated__"] is True and out["big"]["size"] > 5000
    assert len(encode(out, max_bytes=None).encode()) <= 1000
    truncated = [k for k, v in out.items() if isinstance(v, dict) and v.get("__truncated__")]
    assert "big" in truncated and len(truncated) >= 2


def test_top_level_secret_named_parameters_are_masked() -> None:
    """Top-level parameters named like secrets are masked, camelCase and dashed names too;
    look-alike names (max_tokens, author) are kept."""
    out = capture_parameters({"password": "p1", "api_key": "k1", "token": "t1", "secret": "s1",
                              "clientSecret": "c1", "X-Api-Key": "x1", "max_tokens": 5,
                              "author": "me", "empty_password": None}, max_bytes=None)
    assert out == {"password": MASK, "api_key": MASK, "token": MASK, "secret": MASK,
                   "clientSecret": MASK, "X-Api-Key": MASK, "max_tokens": 5, "author": "me",
                   "empty_password": None}


def test_secretstr_annotated_parameter_given_a_plain_string_is_masked() -> None:
    """A SecretStr-annotated parameter that arrives as a plain string (a deployment run's
    JSON parameters) is masked by its annotation, also inside Optional and lists (a list of
    secrets is masked whole)."""
    out = capture_parameters({"signing": "sk-1", "maybe": "sk-2", "many": ["sk-3", "sk-4"],
                              "none": None},
                             {"signing": SecretStr, "maybe": Optional[SecretStr],  # noqa: UP045
                              "many": list[SecretStr], "none": Optional[SecretStr]},  # noqa: UP045
                             max_bytes=None)
    assert out == {"signing": MASK, "maybe": MASK, "many": MASK, "none": None}


def test_credentials_inside_strings_are_masked() -> None:
    """URL passwords, password=... pairs and authorization credentials are masked inside
    any string, at any depth; the rest of the string is kept."""
    out = capture_parameters({
        "db_url": "postgresql://agent:pw-1@db:5432/memory",
        "cache": "redis://:pw-2@cache:6379/0",
        "libpq": "host=db user=agent password=pw-3 dbname=memory",
        "query": "https://api.example.com/v1?api_key=pw-4&page=2",
        "headers": {"Authorization": "Bearer pw-5-abcdef", "Accept": "json",
                    "Proxy-Authorization": "Basic cHc2OnB3Ng=="},
        "note": ["see postgresql://u:pw-7@h/db for details"],
        "plain": "https://example.com/a:b@c", "text": "explain token counting",
    }, max_bytes=None)
    assert out["db_url"] == f"postgresql://agent:{MASK}@db:5432/memory"
    assert out["cache"] == f"redis://:{MASK}@cache:6379/0"
    assert out["libpq"] == f"host=db user=agent password={MASK} dbname=memory"
    assert out["query"] == f"https://api.example.com/v1?api_key={MASK}&page=2"
    assert out["headers"] == {"Authorization": MASK, "Accept": "json",
                              "Proxy-Authorization": MASK}
    assert out["note"] == [f"see postgresql://u:{MASK}@h/db for details"]
    assert out["plain"] == "https://example.com/a:b@c" and out["text"] == "explain token counting"
    assert not any(f"pw-{n}" in encode(out) for n in range(1, 8))


def test_bearer_value_under_an_innocent_key_is_masked() -> None:
    """An authorization value is masked by its shape even under a key that names nothing."""
    assert mask_value({"h": "Bearer eyJhbGciOiJIUzI1NiJ9.x.y"}) == {"h": f"Bearer {MASK}"}


def test_outbox_target_config_holds_no_secret() -> None:
    """A store whose backend config holds credentials (a URL with a password, a password
    field) records no config with its outbox target: replay needs the saved block."""
    from memory_resources.blocks import MemoryStore, PostgresMemory, RedisMemory

    with_url = MemoryStore(redis=RedisMemory(url="redis://:pw-url-9@127.0.0.1:6379/0"))
    with_password = MemoryStore(postgres=PostgresMemory(password=SecretStr("pw-field-9")))
    for memory in (with_url, with_password):
        target = memory.outbox_target()
        assert target.config is None
        assert "pw-" not in repr(target) and "pw-" not in target.label
    plain = MemoryStore(embedded_path="/tmp/memory-resources-test/memory.db")
    assert plain.outbox_target().config is not None  # no secret: replayable from the file
