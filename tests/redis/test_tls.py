"""TLS on a real redis-server: the ssl_* fields verify the server against a CA and present
a client certificate (mutual TLS); without the CA the connection is refused, typed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from memory_resources.errors import BackendUnavailableError
from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisServer, free_port
from tests.servers.tls import make_certs


@pytest.fixture
def tls_server(
    tmp_path: Path, redis_server_factory: Callable[..., RedisServer]
) -> tuple[int, Path]:
    """A throwaway redis-server with a TLS port that requires client certificates."""
    make_certs(tmp_path)
    port = free_port()
    redis_server_factory(extra_args=(
        "--tls-port", str(port), "--tls-cert-file", str(tmp_path / "server.crt"),
        "--tls-key-file", str(tmp_path / "server.key"),
        "--tls-ca-cert-file", str(tmp_path / "ca.crt"), "--tls-auth-clients", "yes"))
    return port, tmp_path


def test_mutual_tls_round_trip(tls_server: tuple[int, Path],
                               make_redis_store: MakeRedisStore) -> None:
    """ssl=True with the CA bundle and a client certificate talks to a TLS-only port."""
    port, certs = tls_server
    store = make_redis_store(url=None, host="127.0.0.1", port=port, ssl=True,
                             ssl_ca_certs=str(certs / "ca.crt"),
                             ssl_certfile=str(certs / "client.crt"),
                             ssl_keyfile=str(certs / "client.key"))
    store.set_context("tls", {"secure": True}, ttl=60)
    record = store.get_context("tls")
    assert record is not None and record["data"] == {"secure": True}
    url_store = make_redis_store(url=f"rediss://127.0.0.1:{port}/0",
                                 ssl_ca_certs=str(certs / "ca.crt"),
                                 ssl_certfile=str(certs / "client.crt"),
                                 ssl_keyfile=str(certs / "client.key"))
    assert url_store.get_context("tls") is not None


def test_unverified_server_is_refused(tls_server: tuple[int, Path],
                                      make_redis_store: MakeRedisStore) -> None:
    """Without the CA that signed the server certificate the connection fails with
    BackendUnavailableError (certificate verification is on by default)."""
    port, certs = tls_server
    store = make_redis_store(url=None, host="127.0.0.1", port=port, ssl=True,
                             ssl_certfile=str(certs / "client.crt"),
                             ssl_keyfile=str(certs / "client.key"), retry_attempts=0)
    with pytest.raises(BackendUnavailableError) as info:
        store.get_context("tls")
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
