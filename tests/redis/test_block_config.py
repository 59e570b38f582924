"""The RedisMemory block and the config-to-client mapping: secrets masked, a working
store built once per block, TLS and pool options passed to redis-py."""

from __future__ import annotations

import pickle
import ssl

import pytest
import redis

from memory_resources.blocks.redis import RedisMemory
from memory_resources.config import RedisConfig
from memory_resources.errors import ConfigurationError
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.client import build_pool, connection_kwargs

SECRET = "Block-Pw-4242"


def test_block_masks_the_password() -> None:
    """The password is a SecretStr: masked in repr, str and model_dump of the block."""
    block = RedisMemory(password=SECRET, key_prefix="app:")
    assert SECRET not in repr(block) and SECRET not in str(block)
    assert SECRET not in str(block.model_dump())
    assert block.to_config().password is not None
    assert block.to_config().password.get_secret_value() == SECRET


def test_block_metadata() -> None:
    """The block carries its Prefect metadata and an Examples section that loads it."""
    assert RedisMemory._block_type_name == "Redis Memory"
    assert RedisMemory._logo_url is not None and RedisMemory._documentation_url is not None
    doc = RedisMemory.__doc__ or ""
    assert "Examples:" in doc and 'RedisMemory.load("BLOCK_NAME")' in doc


def test_block_builds_one_working_store(redis_url: str, redis_prefix: str) -> None:
    """get_store() returns a connected RedisStore, the same one on every call, and close()
    drops it; the block's config equals the same dict given to RedisConfig."""
    block = RedisMemory(url=redis_url, key_prefix=redis_prefix)
    try:
        store = block.get_store()
        assert isinstance(store, RedisStore) and block.get_store() is store
        store.set_context("from-block", {"ok": True})
        record = store.get_context("from-block")
        assert record is not None and record["data"] == {"ok": True}
        assert block.to_config() == RedisConfig(url=redis_url, key_prefix=redis_prefix)
    finally:
        block.close()
    assert block._store is None


def test_block_pickles_without_its_pool(redis_url: str, redis_prefix: str) -> None:
    """A pickled block carries config (secret intact) but no live store; it rebuilds one."""
    block = RedisMemory(url=redis_url, key_prefix=redis_prefix, password=None)
    block.get_store()
    clone = pickle.loads(pickle.dumps(block))
    assert clone._store is None
    assert clone.get_store().get_context("none") is None
    clone.close()
    block.close()


def test_bad_config_is_refused() -> None:
    """Unknown keys and unsafe prefixes are refused by RedisStore's config parsing."""
    with pytest.raises(ConfigurationError):
        RedisStore({"hots": "localhost"})
    with pytest.raises(ConfigurationError):
        RedisStore({"key_prefix": "bad prefix*"})


def test_tls_and_credentials_reach_redis_py() -> None:
    """ssl_* fields map to redis-py's SSL connection options; username and password too."""
    config = RedisConfig(ssl=True, ssl_ca_certs="/ca.pem", ssl_cert_reqs="none",
                         ssl_certfile="/c.pem", ssl_keyfile="/k.pem", username="app",
                         password=SECRET)
    kwargs = connection_kwargs(config)
    assert kwargs["ssl_cert_reqs"] == ssl.CERT_NONE and kwargs["ssl_check_hostname"] is False
    assert kwargs["ssl_ca_certs"] == "/ca.pem" and kwargs["ssl_certfile"] == "/c.pem"
    assert kwargs["username"] == "app" and kwargs["password"] == SECRET
    pool = build_pool(config, None)
    assert issubclass(pool.connection_class, redis.SSLConnection)
    assert pool.max_connections == config.max_connections
    url_pool = build_pool(RedisConfig(), "rediss://h:6380/2")
    assert issubclass(url_pool.connection_class, redis.SSLConnection)
    plain = build_pool(RedisConfig(max_connections=7), "redis://h:6379/0")
    assert not issubclass(plain.connection_class, redis.SSLConnection)
    assert plain.max_connections == 7
    assert plain.connection_kwargs["health_check_interval"] == 30
    assert plain.connection_kwargs["retry"].get_retries() == 0  # RetryPolicy retries
