"""The fault-injection proxy itself: each mode does to a real Redis connection what it says."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers.proxy import TcpProxy


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    target = urlsplit(redis_url)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 6379) as running:
        yield running


def _client(proxy: TcpProxy) -> redis.Redis:
    return redis.Redis(port=proxy.port, socket_timeout=0.3, socket_connect_timeout=0.3,
                       retry=Retry(NoBackoff(), 0))


def test_pass_through_forwards_both_ways(proxy: TcpProxy) -> None:
    """In the default mode a command goes through and its reply comes back."""
    assert _client(proxy).ping() is True


def test_blackhole_swallows_an_established_connection(proxy: TcpProxy) -> None:
    """A black-holed connection stays open but never answers, so the read times out."""
    client = _client(proxy)
    client.ping()
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    assert time.monotonic() - started < 2


def test_blackhole_accepts_new_connections_that_never_answer(proxy: TcpProxy) -> None:
    """A new connection to a black-holed proxy is accepted (a hung server) and times out."""
    proxy.blackhole()
    with pytest.raises(redis.TimeoutError):
        _client(proxy).ping()
    assert proxy.connections_accepted == 1


def test_cut_resets_open_connections(proxy: TcpProxy) -> None:
    """cut() drops every open connection (the peer reads a reset or EOF); new ones work."""
    with socket.create_connection(proxy.address, timeout=2) as raw:
        raw.sendall(b"PING\r\n")
        assert raw.recv(64) == b"+PONG\r\n"
        proxy.cut()
        try:
            raw.sendall(b"PING\r\n")
            reply = raw.recv(64)
        except OSError:
            reply = b""
        assert reply == b""
    assert _client(proxy).ping() is True


def test_reject_closes_new_connections(proxy: TcpProxy) -> None:
    """In reject mode a new connection is closed as soon as it is accepted."""
    proxy.reject()
    with pytest.raises(redis.ConnectionError):
        _client(proxy).ping()
    proxy.pass_through()
    assert _client(proxy).ping() is True


def test_delay_holds_each_chunk(proxy: TcpProxy) -> None:
    """delay(s) forwards each chunk s late, so a round trip takes at least that long."""
    proxy.delay(0.15)
    started = time.monotonic()
    assert redis.Redis(port=proxy.port, socket_timeout=2).ping() is True
    assert time.monotonic() - started >= 0.15


def test_refuses_non_loopback_targets() -> None:
    """The proxy only forwards to loopback addresses."""
    with pytest.raises(ValueError, match="loopback"):
        TcpProxy("10.0.0.1", 6379)
