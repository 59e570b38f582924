"""Throwaway Redis, Redis Cluster and PostgreSQL servers on free loopback ports.

Usable from pytest fixtures (``tests/fixtures/services.py``) and from scripts/benchmarks::

    from tests.servers import PostgresServer, RedisServer

    with RedisServer() as server, PostgresServer(fsync=False) as pg:
        print(server.url, pg.dsn)
"""

from tests.servers._process import ServerStartError, free_port
from tests.servers.postgres import PostgresServer, postgres_bin_dir, ssl_postgres_bin_dir
from tests.servers.redis import RedisBinary, RedisServer, find_redis_cli, find_redis_server
from tests.servers.redis_cluster import RedisCluster
from tests.servers.redis_sentinel import SentinelTopology

__all__ = [
    "PostgresServer",
    "RedisBinary",
    "RedisCluster",
    "RedisServer",
    "SentinelTopology",
    "ServerStartError",
    "find_redis_cli",
    "find_redis_server",
    "free_port",
    "postgres_bin_dir",
    "ssl_postgres_bin_dir",
]
