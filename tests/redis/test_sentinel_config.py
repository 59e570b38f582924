"""Redis Sentinel configuration: the sentinel:// URL parses into sentinels, service, db and
the data nodes' credentials; bad URLs and contradictory fields are ConfigurationErrors naming
the field and the fix; no password shows in any form of the config or of the store. And the
primary lookup's decisions, on scripted sentinel replies."""

from __future__ import annotations

from typing import Any

import pytest
import redis.exceptions as rex
from redis.sentinel import MasterNotFoundError

from memory_resources.config import RedisConfig, parse_config
from memory_resources.errors import ConfigurationError
from memory_resources.sentinel_url import parse_sentinel_url
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.aio import AsyncRedisStore
from memory_resources.stores.redis.retrying import PERMANENT, REFUSED, classify
from memory_resources.stores.redis.sentinel import SyncSentinels

PLANTED = "Pl4nted-s3cret"
URL = f"sentinel://agent:{PLANTED}@10.0.0.1:26379,10.0.0.2,[::1]:26380/agents/3"


def test_url_parts() -> None:
    """Hosts (default port 26379, bracketed IPv6), service, db and credentials come out of
    the URL; sentinels:// means TLS; a lone userinfo part is the password, as in redis://."""
    target = parse_sentinel_url(URL)
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert (target.service, target.db, target.username, target.password, target.tls) == (
        "agents", 3, "agent", PLANTED, False)
    assert PLANTED not in repr(target)
    plain = parse_sentinel_url(f"sentinels://{PLANTED}@h:1/svc")
    assert (plain.db, plain.username, plain.password, plain.tls) == (0, None, PLANTED, True)
    encoded = parse_sentinel_url("sentinel://:p%40ss%3A@h/s%20x")
    assert (encoded.password, encoded.service) == ("p@ss:", "s x")


@pytest.mark.parametrize(("url", "problem"), [
    ("sentinel://h1:26379,h2:26379", "names no service"),
    ("sentinel://h1:26379/", "names no service"),
    (f"sentinel://:{PLANTED}@/svc", "names no sentinel host"),
    ("sentinel://h1:notaport/svc", "not 1-65535"),
    ("sentinel://h1:70000/svc", "not 1-65535"),
    ("sentinel://h1/svc/notadb", "is not a number"),
    ("sentinel://h1/svc/0/extra", "more than /<service_name>/<db>"),
    ("sentinel://h1,,h2/svc", "host is empty"),
])
def test_bad_sentinel_url_is_a_configuration_error(url: str, problem: str) -> None:
    """A URL that does not parse fails when the config is built, naming url, the problem
    and the syntax to use, never the password."""
    with pytest.raises(ConfigurationError) as info:
        parse_config(RedisConfig, {"url": url}, "redis_config")
    text = str(info.value)
    assert "redis_config['url']" in text and problem in text
    assert "sentinel://[[user]:password@]host1:26379" in text
    assert PLANTED not in text


@pytest.mark.parametrize(("fields", "named", "fix"), [
    ({"url": "sentinel://h/svc", "cluster": True}, "cluster", "cluster=False"),
    ({"url": "redis://h:1/0", "sentinel_password": "x"}, "sentinel_password",
     "remove sentinel_password"),
    ({"sentinel_username": "x"}, "sentinel_username", "to sentinel://host1:26379"),
    ({"url": "sentinel://h/svc", "sentinel_timeout": 0}, "sentinel_timeout", "greater than 0"),
    ({"lock_nodes": ["sentinel://h/"]}, "lock_nodes", "names no service"),
])
def test_contradictory_fields_are_refused(fields: dict[str, Any], named: str,
                                          fix: str) -> None:
    """Sentinel with cluster, sentinel credentials without a sentinel URL, a zero timeout or
    a bad sentinel lock node are refused naming the field and what to do."""
    with pytest.raises(ConfigurationError) as info:
        parse_config(RedisConfig, fields, "redis_config")
    assert named in str(info.value) and fix in str(info.value)


def test_secrets_stay_hidden() -> None:
    """The URL and the sentinel password are masked in every form of the config and the
    stores, and both are in the scrub list of error messages."""
    config = RedisConfig.model_validate({"url": URL, "sentinel_password": PLANTED + "2",
                                         "lock_nodes": [URL]})
    assert config.sentinel()
    for text in (repr(config), str(config), config.model_dump_json(), repr(RedisStore(config)),
                 repr(AsyncRedisStore(config))):
        assert PLANTED not in text
    assert {PLANTED, PLANTED + "2"} <= set(config.secret_values())


class _FakeSentinel:
    """A sentinel client whose SENTINEL MASTERS reply (or error) is given."""

    def __init__(self, port: int, reply: Any) -> None:
        self.connection_pool = type("Pool", (), {"connection_kwargs": {"host": "s",
                                                                       "port": port}})()
        self.reply = reply

    def sentinel_masters(self) -> Any:
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply


def _state(port: int, flags: str = "master") -> dict[str, Any]:
    names = set(flags.split(","))
    return {"svc": {"ip": "10.0.0.1", "port": port, "flags": flags,
                    "is_master": "master" in names, "is_sdown": "s_down" in names,
                    "is_odown": "o_down" in names, "num-other-sentinels": 2}}


def _discover(*replies: Any) -> tuple[str, int]:
    manager = SyncSentinels([])
    manager.sentinels = [_FakeSentinel(26379 + i, r) for i, r in enumerate(replies)]
    return manager.discover_master("svc")


def test_lookup_prefers_a_sentinel_not_running_a_failover() -> None:
    """The sentinel running a fail-over still names the old primary: another sentinel's
    answer wins, and the old one is used only when nobody else answers; a primary marked
    down is skipped."""
    leader = _state(6379, "master,failover_in_progress,force_failover")
    assert _discover(leader, _state(6380)) == ("10.0.0.1", 6380)
    assert _discover(leader, rex.ConnectionError("down")) == ("10.0.0.1", 6379)
    assert _discover(_state(6379, "master,s_down"), _state(6380)) == ("10.0.0.1", 6380)


def test_lookup_errors_are_typed() -> None:
    """No sentinel naming a primary raises MasterNotFoundError (retried as not sent); every
    reachable sentinel refusing the credentials raises AuthenticationError (permanent)."""
    with pytest.raises(MasterNotFoundError, match="s:26379: the primary is down"):
        _discover(_state(6379, "master,o_down"), rex.TimeoutError("slow"))
    assert classify(MasterNotFoundError("x")) == REFUSED
    with pytest.raises(rex.AuthenticationError, match="sentinel_username/sentinel_password"):
        _discover(rex.AuthenticationError("WRONGPASS"), rex.ConnectionError("down"))
    assert classify(rex.AuthenticationError("x")) == PERMANENT
