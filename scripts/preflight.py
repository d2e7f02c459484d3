"""Checks a command makes before it starts anything, each failure one line naming the cause and
the fix (`SystemExit`): the ports it will listen on are free, the Postgres and Redis it was
pointed at answer. Without them a taken port left `make ui` half-started with duplicate daemons,
and an unreachable CC_PG_URL printed 627 lines of tracebacks from inside Dagster runs."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlparse


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        # As uvicorn and dagster bind: a port left in TIME_WAIT by a stopped server is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_ports(wanted: list[tuple[int, str, str]]) -> None:
    """`wanted`: (port, what listens there, the variable that moves it)."""
    for port, what, variable in wanted:
        if not port_free(port):
            raise SystemExit(f"port {port} ({what}) is already in use: stop what listens there "
                             f"(an earlier `make ui`?) or set {variable} to a free port")


def _reason(exc: BaseException) -> str:
    # psycopg and redis put the server address before the reason; the caller names the address.
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.split(r"[:.] ", first)[-1].strip().rstrip(".").lower() or type(exc).__name__


def check_postgres(url: str, variable: str, fix: str) -> None:
    import psycopg

    parsed = urlparse(url)
    where = f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 5432}"
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        raise SystemExit(f"cannot reach Postgres at {where} ({variable}): {_reason(exc)} — {fix}") from None


def check_redis(url: str) -> None:
    import redis

    parsed = urlparse(url)
    where = f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as exc:
        raise SystemExit(f"cannot reach Redis at {where} (CC_REDIS_URL): {_reason(exc)} — "
                         "start it or unset CC_REDIS_URL (one replica, rooms in-process)") from None
