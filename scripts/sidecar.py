"""`make sidecar`: the streaming sidecar on 127.0.0.1:`CC_SIDECAR_PORT` (default 8000), after
checking, in one line each, that the port is free and `CC_REDIS_URL` (if set) answers."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from resources.settings import Settings
    from scripts.preflight import check_ports, check_redis
    from streaming import serve

    settings = Settings.from_env()
    check_ports([(settings.sidecar_port, "sidecar", "CC_SIDECAR_PORT")])
    if settings.redis_url:
        check_redis(settings.redis_url)
    serve.main(["--host", "127.0.0.1", "--port", str(settings.sidecar_port), *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
