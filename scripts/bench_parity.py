"""`make bench-parity`: live state parity on a large world, with its time.

A 100k-event sandbox world (7 days) replayed through a real sidecar as webhooks and pushed events,
against an empty warehouse; every workflow of `/api/workflows` compared with the build's
`fct_workflows`, field by field, and the overview and events likewise (scripts/parity.py).

    python -m scripts.bench_parity [--events 100000] [--days 7] [--on-built]
"""

from __future__ import annotations

import argparse
import time

from scripts.parity import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--on-built", action="store_true")
    args = parser.parse_args()
    started = time.monotonic()
    report = run(args.events, args.days, args.on_built)
    print(f"parity, {args.events:,}-event world over {args.days} days"
          f"{' (last day on a built warehouse)' if args.on_built else ''}: {report.line()}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items())
          + f"; total {time.monotonic() - started:.1f}")
    print(f"replay rate: {report.deliveries / report.seconds['replay']:,.0f} deliveries/s; live state settled "
          f"{report.seconds['settled'] - report.seconds['replay']:.1f} s after the last delivery")
    for mismatch in report.mismatches[:10]:
        print("  ", mismatch)
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
