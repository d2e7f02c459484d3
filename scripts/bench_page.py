"""The page in a real browser with millions of events in the warehouse (`make bench-page`).

Usage: python -m scripts.bench_page [--seed-events 300000] [--copies 34] [--data-dir DIR]
                                   [--loads 5] [--rate 1000] [--seconds 60]

Builds (or reuses, with `--data-dir`) the warehouse `make bench-rest` builds: the sandbox's
organisation through the real ingest, its events copied into earlier weeks, the real dbt build
(300,000 × 34 ≈ 10 million events by default). Then the sidecar serves it (`streaming.serve`, its
own process) and Debian's Chromium, driven by Playwright, opens the page:

- **first load**, `--loads` times in a fresh browser context each (nothing cached): the time from
  navigation to the page's `cc-populated` mark (every panel's first read answered and drawn), and
  the bytes the browser received for it (the document, scripts, styles and REST reads: resource
  timing's transfer sizes, so compressed bytes with headers), then once more with a warm cache;
- **keeping up**: with the page open, `bench_stream`'s load generator posts `--rate` events per
  second for `--seconds`: weather opportunities to `POST /events` (`--stream events`, each a new
  event in the feed and the charts), or signed GitHub webhooks each opening a pull request of its
  own (`--stream new-prs`: a new workflow each, so the table and the sidecar's live state too); the page counts its animation frames (frames
  per second, the longest gap between two) and every 0.5 s the newest event in the feed is read:
  its title carries its send time, so its lag is now minus that.

Prints the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from scripts.bench_rest import BUILT, build_warehouse
from scripts.bench_stream import JWT_SECRET, _free_port, _stop, start_server
from scripts.benchlib import quantile
from scripts.browser import MISSING, chromium, launch

ROOT = Path(__file__).resolve().parent.parent
DESKTOP = {"width": 1280, "height": 900}

# Installed before the page's own script runs: frame times for the keeping-up phase.
FRAME_COUNTER = """
window.__frames = [];
const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); };
requestAnimationFrame(tick);
"""

LOAD_FIGURES = """() => {
  const mark = performance.getEntriesByName("cc-populated")[0];
  const entries = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
  return {
    populated: mark ? mark.startTime : null,
    transfer: entries.reduce((n, e) => n + (e.transferSize || 0), 0),
    decoded: entries.reduce((n, e) => n + (e.decodedBodySize || 0), 0),
    requests: entries.length,
  };
}"""

NEWEST_TITLE = """() => {
  const item = document.querySelector("[data-testid=feed-item] .etitle");
  return [Date.now(), item ? item.textContent : ""];
}"""


def first_loads(browser, url: str, token: str, loads: int) -> tuple[list[dict], dict]:
    cold = []
    warm: dict = {}
    for n in range(loads):
        context = browser.new_context(viewport=DESKTOP, bypass_csp=True)  # the waits below evaluate
        page = context.new_page()
        page.goto(f"{url}/#token={token}")
        page.wait_for_function("() => performance.getEntriesByName('cc-populated').length > 0", timeout=60_000)
        cold.append(page.evaluate(LOAD_FIGURES))
        if n == loads - 1:
            page.reload()
            page.wait_for_function("() => performance.getEntriesByName('cc-populated').length > 0", timeout=60_000)
            warm = page.evaluate(LOAD_FIGURES)
        context.close()
    return cold, warm


EVENTS_TOKEN = "bench-events-token-0123456789abcdef0123"


def keep_up(browser, url: str, token: str, port: int, rate: int, seconds: float, work: Path, stream: str) -> dict:
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    context.add_init_script(FRAME_COUNTER)
    page = context.new_page()
    page.goto(f"{url}/#token={token}")
    page.wait_for_function("() => performance.getEntriesByName('cc-populated').length > 0", timeout=60_000)
    page.wait_for_function("() => /live/.test(document.querySelector('[data-testid=connection-state]')"
                           "?.textContent || '')", timeout=30_000)
    out = work / "load.json"
    kind = ["--unique-prs"] if stream == "new-prs" else ["--events-token", EVENTS_TOKEN]
    load = subprocess.Popen([sys.executable, "-m", "scripts.bench_stream", "load", "--port", str(port),
                             "--out", str(out), "--rate", str(rate), "--seconds", str(seconds),
                             "--run", "page", "--connections", "32", *kind], cwd=ROOT)
    page.evaluate("() => { window.__frames = []; }")
    lags: list[float] = []
    stale = 0
    started = time.monotonic()
    while load.poll() is None and time.monotonic() - started < seconds + 60:
        now_ms, title = page.evaluate(NEWEST_TITLE)
        found = re.search(r"bench-\d+-(\d+)", title or "")
        if found:
            lags.append(now_ms - int(found.group(1)) / 1e6)
        else:
            stale += 1
        page.wait_for_timeout(500)
    load.wait()
    frames = page.evaluate("() => window.__frames")
    sent = json.loads(out.read_text())
    context.close()
    gaps = [b - a for a, b in zip(frames, frames[1:], strict=False)]
    span_s = (frames[-1] - frames[0]) / 1000 if len(frames) > 1 else 0
    per_second: dict[int, int] = {}
    for t in frames:
        per_second[int((t - frames[0]) // 1000)] = per_second.get(int((t - frames[0]) // 1000), 0) + 1
    full_seconds = [n for s, n in per_second.items() if s < int(span_s)]
    return {
        "sent": sent["sent"], "acked": sent["statuses"].get("202", 0),
        "ack_rate": sent["statuses"].get("202", 0) / max(1e-9, sent["last_ack"] - sent["first_sent"]),
        "fps_mean": len(frames) / span_s if span_s else 0.0,
        "fps_min_second": min(full_seconds) if full_seconds else 0,
        "frame_gap_p99_ms": quantile(gaps, 0.99) if gaps else 0.0, "frame_gap_max_ms": max(gaps, default=0.0),
        "lag_p50_ms": quantile(lags, 0.5) if lags else None, "lag_p99_ms": quantile(lags, 0.99) if lags else None,
        "lag_max_ms": max(lags) if lags else None, "samples": len(lags), "samples_without_event": stale,
    }


def report_loads(events: int, cold: list[dict], warm: dict) -> None:
    populated = [c["populated"] for c in cold]
    print(f"\nfirst load, {events:,} events ({len(cold)} cold loads, fresh context each):")
    print(f"  to populated: median {statistics.median(populated):.0f} ms (min {min(populated):.0f},"
          f" max {max(populated):.0f}); warm cache {warm['populated']:.0f} ms")
    print(f"  transferred: {cold[0]['transfer'] / 1024:.1f} KB over {cold[0]['requests']} requests"
          f" ({cold[0]['decoded'] / 1024:.1f} KB decoded); warm cache {warm['transfer'] / 1024:.1f} KB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed-events", type=int, default=300_000, help="sandbox events ingested (default 300k)")
    parser.add_argument("--copies", type=int, default=34, help="copies of them in earlier weeks (default 34: ~10M)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="build the warehouse here and keep it (a later run reuses it, as bench-rest's does)")
    parser.add_argument("--loads", type=int, default=5, help="cold first loads (default 5)")
    parser.add_argument("--rate", type=int, default=1000, help="webhooks per second while the page is open")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--stream", choices=("events", "new-prs"), default="events",
                        help="events: weather opportunities pushed to /events, each a new event in no workflow "
                             "(the page's load); new-prs: signed GitHub webhooks each opening a pull request, so "
                             "each a new workflow too (the sidecar's live state is then the limit)")
    args = parser.parse_args()

    if chromium() is None:
        sys.exit(MISSING)
    from playwright.sync_api import sync_playwright

    from resources.storage.warehouse import mart_counts
    from streaming.auth import issue_token

    with tempfile.TemporaryDirectory(prefix="cc-bench-page-") as tmp:
        work = Path(tmp)
        data_dir = args.data_dir.resolve() if args.data_dir else work / "data"
        if not (data_dir / BUILT).exists():
            end = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
            build_warehouse(work, data_dir, args.seed_events, args.copies, args.days, end)
        events = json.loads((data_dir / BUILT).read_text())["events"]
        counts = mart_counts(data_dir / "warehouse.duckdb")
        print(f"warehouse: ~{events:,} events, {counts.get('fct_workflows', 0):,} workflows in {data_dir}", flush=True)

        port = _free_port()
        log = (work / "sidecar.log").open("wb")  # noqa: SIM115 - closed with the folder
        sidecar = start_server("sidecar", port, data_dir, log, {"CC_EVENTS_API_TOKEN": EVENTS_TOKEN})
        url = f"http://127.0.0.1:{port}"
        token = issue_token(JWT_SECRET, "bench", 3600, scopes=["commands", "dashboards", "alerts"])
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)
                cold, warm = first_loads(browser, url, token, args.loads)
                report_loads(events, cold, warm)
                live = keep_up(browser, url, token, port, args.rate, args.seconds, work, args.stream)
                browser.close()
        finally:
            _stop(sidecar)
            log.close()

    print(f"\nkeeping up, {args.rate:,} {args.stream}/s for {args.seconds:.0f} s: {live['acked']:,}/{live['sent']:,}"
          f" acknowledged ({live['ack_rate']:,.0f}/s)")
    print(f"  frames: {live['fps_mean']:.1f} fps mean, {live['fps_min_second']} in the slowest second;"
          f" frame gap p99 {live['frame_gap_p99_ms']:.0f} ms, max {live['frame_gap_max_ms']:.0f} ms")
    if live["lag_p50_ms"] is not None:
        print(f"  feed lag (send → newest in the feed, sampled every 0.5 s): p50 {live['lag_p50_ms']:.0f} ms,"
              f" p99 {live['lag_p99_ms']:.0f} ms, max {live['lag_max_ms']:.0f} ms"
              f" ({live['samples']} samples, {live['samples_without_event']} before the first event)")
    print(json.dumps({"cold": cold, "warm": warm, "live": live}), file=sys.stderr)


if __name__ == "__main__":
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    main()
