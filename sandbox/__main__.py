"""`python -m sandbox serve|truth`: run the sandbox sources, or just write their ground truth."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _world_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events", type=int, default=5000, help="approximate number of events")
    parser.add_argument("--days", type=int, default=7, help="length of the window ending at --end")
    parser.add_argument(
        "--end", default=None, help="ISO 8601 end of the window (default: now, to the minute)"
    )
    parser.add_argument("--out", type=Path, default=Path("data/sandbox"), help="folder for truth.parquet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve GitHub, Linear, Charlie, OpenClaw, cron and weather over HTTP")
    _world_args(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--rate-limit", type=int, default=5000, help="GitHub REST requests and GraphQL points per token per hour")
    serve.add_argument("--ready-file", type=Path, default=None, help="JSON {url, pid} written once serving")
    truth = commands.add_parser("truth", help="generate the world and write truth.parquet and truth_agents.parquet")
    _world_args(truth)
    args = parser.parse_args(argv)

    if args.command == "serve":
        from sandbox.server import serve as run

        run(
            args.out,
            seed=args.seed,
            events=args.events,
            days=args.days,
            end=args.end,
            host=args.host,
            port=args.port,
            rate_limit=args.rate_limit,
            ready_file=args.ready_file,
        )
        return 0
    from sandbox import truth as truth_mod
    from sandbox.agents import generate_agents
    from sandbox.generator import generate

    started = time.monotonic()
    org = generate(args.seed, args.events, args.days, args.end)
    truth = truth_mod.build(org)
    path = truth_mod.write_parquet(truth, args.out / "truth.parquet")
    agents_truth = truth_mod.build_agents(generate_agents(org), truth)
    agents_path = truth_mod.write_parquet(agents_truth, args.out / "truth_agents.parquet")
    print(f"{path}: {org.event_count} events, {agents_path.name}: {len(agents_truth.event_id)} events "
          f"in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
