"""`make sidecar`: the streaming sidecar on 127.0.0.1:`CC_SIDECAR_PORT` (default 8000), as
`CC_SIDECAR_WORKERS` worker processes (`streaming/workers.py`), after checking, in one line each,
that the port is free, `CC_REDIS_URL` (if set) answers and is set for more than one worker, and
`CC_LANDING_URL` (if set) answers. It uses the configured `CC_JWT_SECRET` only (no development
secret, unlike `make ui`) and prints the page's URL."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from resources.settings import Settings
    from scripts.preflight import check_ports, check_postgres, check_redis
    from streaming import serve
    from streaming.workers import check as check_workers

    settings = Settings.from_env()
    if problem := check_workers(settings):
        raise SystemExit(problem)
    check_ports([(settings.sidecar_port, "sidecar", "CC_SIDECAR_PORT")])
    if settings.redis_url:
        check_redis(settings.redis_url)
    if settings.landing_url:
        check_postgres(settings.landing_url, "CC_LANDING_URL", "start it or unset CC_LANDING_URL (the landing in local files)")
    print(f"command-center page at http://127.0.0.1:{settings.sidecar_port}/ "
          + ("(paste a token signed with CC_JWT_SECRET)" if settings.jwt_secret else
             "-- but CC_JWT_SECRET is unset, so it and every REST call are refused: set it, or use `make ui`, "
             "which makes a development secret"), flush=True)
    serve.main(["--host", "127.0.0.1", "--port", str(settings.sidecar_port), *(argv or [])])


if __name__ == "__main__":
    main(sys.argv[1:])
