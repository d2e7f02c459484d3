"""A signed sender's acks during a slowloris (`make bench-slowloris`).

Usage: python -m scripts.bench_slowloris [--seconds 20] [--rate 100] [--stalled 900] [--trickled 100]
                                        [--max-open-files N]

One sidecar (`python -m streaming.serve`, default settings) on loopback and, in the same run, two
phases of a signed GitHub sender posting at `--rate` over 8 keep-alive connections: first alone,
then while a process of its own holds `--stalled` connections that never finish their headers
and `--trickled` that send their bodies a byte a second (reopening each one the sidecar closes).
Prints acks, unanswered requests, 5xx, ack p50/p99 per phase, and acknowledged deliveries
missing from the landing log. `--max-open-files 1024` runs the sidecar as on a host with that
limit, where the attack passes the connection budget. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from scripts.chaos.harness import SECRETS, Sidecar
from scripts.chaos.slowloris import Phase, send_during


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--stalled", type=int, default=900)
    parser.add_argument("--trickled", type=int, default=100)
    parser.add_argument("--max-open-files", type=int)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="cc-bench-slowloris-"))
    server = Sidecar(workdir / "data", dict(SECRETS), args.max_open_files).start()
    phases: dict[str, Phase] = {}
    try:
        phases["alone"] = asyncio.run(send_during(server.port, args.rate, args.seconds, "alone", workdir=workdir))
        phases["slowloris"] = asyncio.run(send_during(server.port, args.rate, args.seconds, "attack",
                                                      stalled=args.stalled, trickled=args.trickled,
                                                      workdir=workdir))
        landed = {line.get("delivery_id") for line in server.landed()}
    finally:
        server.stop()
    limit = f"open-file limit {args.max_open_files}" if args.max_open_files else "the host's open-file limit"
    print(f"\nsigned sender at {args.rate:g} webhooks/s for {args.seconds:g} s per phase; slowloris: "
          f"{args.stalled} stalled + {args.trickled} trickled connections; {limit}\n")
    print("| phase | sent | acked | unanswered | 5xx | acked not landed | ack p50 | ack p99 | attack |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, run in (("alone", "alone"), ("slowloris", "attack")):
        phase = phases[name]
        sent = phase.sent
        p50, p99 = phase.ack_ms(0.5), phase.ack_ms(0.99)
        attack = "–" if phase.attack is None else (
            f"{phase.attack.opened:,} connections, {phase.attack.cut:,} cut, {phase.attack.answered_408:,} × 408")
        print(f"| {name} | {sent.sent:,} | {len(sent.acked):,} | {sent.failures} | {sent.errors_5xx} | "
              f"{len(sent.deliveries(run) - landed)} | {'–' if p50 is None else f'{p50:.1f} ms'} | "
              f"{'–' if p99 is None else f'{p99:.1f} ms'} | {attack} |")


if __name__ == "__main__":
    main()
