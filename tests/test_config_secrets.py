"""Secrets in configuration: URLs and DSNs are SecretStr (masked in repr, dumps, errors and
logs); bad URL/DSN syntax, unsafe identifiers and system schemas are ConfigurationErrors."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from memory_resources import MemoryAPI
from memory_resources.config import PostgresConfig, RedisConfig, VectorConfig, parse_config
from memory_resources.errors import BackendError, ConfigurationError
from memory_resources.stores.redis import RedisStore

PLANTED = "Pl4nted-s3cret"
REDIS_URL = f"redis://agent:{PLANTED}@127.0.0.1:1/0"
NODE_URL = f"redis://:{PLANTED}@127.0.0.1:2/0"
DSN = f"postgresql://agent:{PLANTED}@127.0.0.1:1/agents"
KV_DSN = f"host=127.0.0.1 port=1 dbname=agents password={PLANTED}"


def _every_form(model: Any) -> list[str]:
    """Each way a config is shown or serialised."""
    return [repr(model), str(model), repr(model.model_dump()), model.model_dump_json(),
            json.dumps(model.model_dump(mode="json")), f"{model!r:}"]


def test_redis_urls_are_secret_and_still_usable() -> None:
    """url and lock_nodes given as plain strings become SecretStr: no form of the config
    shows the password, yet the store gets the revealed URLs."""
    config = RedisConfig.model_validate({"url": REDIS_URL, "lock_nodes": [NODE_URL]})
    assert isinstance(config.url, SecretStr) and isinstance(config.lock_nodes[0], SecretStr)
    for text in _every_form(config):
        assert PLANTED not in text
    assert config.url_value() == REDIS_URL and config.lock_node_urls() == [NODE_URL]
    assert PLANTED not in repr(RedisStore(config))


def test_postgres_dsns_are_secret() -> None:
    """dsn and read_replica_dsn (URL or key=value form) never show their password."""
    config = PostgresConfig.model_validate({"dsn": DSN, "read_replica_dsn": KV_DSN})
    vector = VectorConfig.model_validate({"postgres": {"dsn": DSN}})
    for text in [*_every_form(config), *_every_form(vector)]:
        assert PLANTED not in text
    assert config.dsn is not None and config.dsn.get_secret_value() == DSN


@pytest.mark.parametrize(("key", "config", "field"), [
    ("redis_config", {"url": "notaurl"}, "url"),
    ("redis_config", {"url": f"redis://:{PLANTED}@host:notaport/0"}, "url"),
    ("redis_config", {"lock_nodes": ["redis://h:1", f"http://:{PLANTED}@h"]}, "lock_nodes"),
    ("postgres_config", {"dsn": "notadsn"}, "dsn"),
    ("postgres_config", {"dsn": f"host=h password={PLANTED} junk"}, "dsn"),
    ("postgres_config", {"read_replica_dsn": f"user=x password {PLANTED}"}, "read_replica_dsn"),
])
def test_bad_url_or_dsn_fails_when_the_api_is_built(key: str, config: dict[str, Any],
                                                    field: str) -> None:
    """A URL/DSN that does not parse is a ConfigurationError at MemoryAPI(...) naming the key
    and the expected form, without echoing the value (it may hold a password)."""
    with pytest.raises(ConfigurationError) as info:
        MemoryAPI(**{key: config})
    message = str(info.value)
    assert f"{key}[{field!r}" in message and PLANTED not in message
    assert "redis://" in message or "postgresql://" in message


def test_pydantic_errors_of_blocks_and_configs_hide_the_input() -> None:
    """Building a config directly with a bad value raises a ValidationError that does not
    quote the input (hide_input_in_errors)."""
    with pytest.raises(ValidationError) as info:
        RedisConfig(url=SecretStr(f"redis://:{PLANTED}@h:bad/0"))
    assert PLANTED not in str(info.value)
    with pytest.raises(ValidationError) as info:
        PostgresConfig(dsn=SecretStr(f"password={PLANTED} nonsense"))
    assert PLANTED not in str(info.value)


@pytest.mark.parametrize(("model", "values", "field"), [
    (PostgresConfig, {"schema": "information_schema"}, "schema"),
    (PostgresConfig, {"schema": "pg_catalog"}, "schema"),
    (PostgresConfig, {"schema": "pg_toast"}, "schema"),
    (PostgresConfig, {"schema": "PG_temp_1"}, "schema"),
    (PostgresConfig, {"schema": "agents\n"}, "schema"),
    (VectorConfig, {"namespace": "pgvector_ns\n"}, "namespace"),
    (RedisConfig, {"key_prefix": "agents:\n"}, "key_prefix"),
])
def test_unsafe_identifiers_and_system_schemas_are_refused(model: Any, values: dict[str, Any],
                                                           field: str) -> None:
    """Identifiers are matched whole (a trailing newline is refused) and PostgreSQL's system
    schemas cannot be used."""
    with pytest.raises(ConfigurationError, match=field):
        parse_config(model, values, "config")


def test_connection_errors_and_logs_do_not_show_url_passwords(
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """A Redis URL with a password pointing at a closed port fails with a BackendError and
    log lines that never contain the password."""
    caplog.set_level(logging.DEBUG)
    store = RedisStore({"url": REDIS_URL, "lock_nodes": [NODE_URL], "connection_timeout": 0.2,
                        "socket_timeout": 0.2, "retry_attempts": 0})
    with pytest.raises(BackendError) as info:
        store.set_context("c", {"a": 1})
    store.close()
    out, err = capfd.readouterr()
    for text in (str(info.value), repr(info.value), caplog.text, out, err):
        assert PLANTED not in text
