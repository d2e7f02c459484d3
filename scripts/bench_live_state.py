"""What one run of the live workflow state costs as the live window grows (`make bench-live-state`).

Usage: python -m scripts.bench_live_state [--window 200000] [--batch 100] [--at 1000,10000,50000,100000,200000]

The sidecar's live state (`streaming/state/workflows.py`) recomputes the workflows the events since
its last run touched. This drives it in one process, without HTTP: each step adds `--batch` new
pull requests (the `pull_request/opened` fixture, a PR number of its own each, so a workflow of
its own each, as `make bench-workers` sends them), notes them with the records they carry, and
times `LiveState.refresh()` on the thread that calls it (no spacing, no worker thread). Reported at
each window size in `--at`: the median run over the last 20 steps before it, in ms, and per event of
the batch. A run that costs its batch stays flat as the window grows; one that copies or compares
the whole window grows with it. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from scripts.bench_stream import FIXTURE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=int, default=200_000, help="live events at the end")
    parser.add_argument("--batch", type=int, default=100, help="new events per run")
    parser.add_argument("--at", default="1000,10000,50000,100000,200000", help="window sizes to report at")
    args = parser.parse_args()

    from cc_events.context import NormalizeContext
    from cc_events.registry import normalize_delivery
    from resources.settings import Settings
    from streaming.correlate import Correlator
    from streaming.data.marts import marts_from_settings
    from streaming.live import LiveEvents, event_dict
    from streaming.state.workflows import LiveState, carried_by
    from streaming.webhooks import Delivery

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        marts = marts_from_settings(settings)
        live = LiveEvents(max_events=args.window + args.batch)
        correlator = Correlator(marts)
        state = LiveState(settings, marts, correlator, live)
        state.prepare()
        template = json.loads(FIXTURE.read_text())
        ctx = NormalizeContext()
        at = sorted(int(a) for a in args.at.split(","))
        runs: list[float] = []
        print(f"window   run ms (median of 20)   µs per event of the batch   [batch {args.batch}]")
        number = 100_000
        while len(live) < args.window:
            rows, carried = [], []
            received = datetime.now(UTC)
            for _ in range(args.batch):
                number += 1
                payload = copy.deepcopy(template)
                payload["number"] = payload["pull_request"]["number"] = number
                payload["pull_request"]["id"] = number
                delivery = Delivery("github", f"bench-{number}", "pull_request", payload, payload.get("action"))
                for event in normalize_delivery("github", "pull_request", payload, ctx):
                    rows.append(event_dict(event, received, correlator.workflow_for))
                carried.extend(carried_by(delivery, received))
            live.add(rows)
            state.note([r["event_id"] for r in rows], carried)
            started = time.perf_counter()
            state.refresh()
            runs.append(time.perf_counter() - started)
            while at and len(live) >= at[0]:
                median = statistics.median(runs[-20:])
                print(f"{at.pop(0):>7,}   {median * 1000:10.1f}   {median * 1e6 / args.batch:14.0f}", flush=True)
        state.close()


if __name__ == "__main__":
    main()
