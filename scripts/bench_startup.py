"""`make bench-startup`: how long a sidecar takes from process start to its first 202, with an
empty landing log and with a week of it (~2 GB).

Usage: python -m scripts.bench_startup [--gb 2] [--runs 3] [--keep DIR]
The landing log is written as the sidecar writes it (GitHub payloads, one line per delivery,
spread over the last 7 days). The first start on it has no dedupe index yet and builds it from
the whole log (what an upgrade costs once); the timed starts after it read the index. Each figure
is the median of `--runs` starts: a fresh `uvicorn streaming.app:app` process, timed until a
signed webhook is answered 202. Nothing is asserted; on a shared machine label the figures loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from scripts.chaos.harness import ROOT, SECRETS, free_port, github_headers

FIXTURES = ROOT.parent / "shared" / "fixtures" / "github-webhooks"


def _payloads() -> list[bytes]:
    """GitHub payloads as they come (the shared fixtures when present), compact, one line each."""
    found = sorted(FIXTURES.glob("**/*.json")) if FIXTURES.is_dir() else []
    payloads = [json.dumps(json.loads(p.read_text()), separators=(",", ":")).encode() for p in found[:40]]
    if not payloads:  # about the size of a pull_request payload
        body = {"action": "opened", "number": 1, "pull_request": {"title": "x" * 200, "body": "y" * 6000},
                "repository": {"full_name": "acme/api"}, "sender": {"login": "octocat"}}
        payloads = [json.dumps(body, separators=(",", ":")).encode()]
    return payloads


def write_landing(data_dir: Path, total_bytes: int) -> tuple[int, int]:
    """~`total_bytes` of webhook landing lines over the last 7 days; returns (lines, bytes)."""
    payloads = _payloads()
    root = data_dir / "landing" / "webhooks"
    root.mkdir(parents=True, exist_ok=True)
    today = datetime.now(UTC).date()
    per_day = total_bytes // 7
    lines = written = 0
    for back in range(6, -1, -1):
        day = today - timedelta(days=back)
        stamp = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).replace(tzinfo=None).isoformat()
        with (root / f"date={day.isoformat()}.jsonl").open("wb", buffering=8 << 20) as handle:
            size = 0
            while size < per_day:
                delivery = str(uuid.uuid4())
                payload = payloads[lines % len(payloads)]
                line = (b'{"id":"github:' + delivery.encode() + b'","source":"github","delivery_id":"'
                        + delivery.encode() + b'","event":"pull_request","action":"opened","status":"raw",'
                        b'"reason":null,"repo":"acme/api","_received_at":"' + stamp.encode() + b'","payload":'
                        + payload + b"}\n")
                handle.write(line)
                size += len(line)
                lines += 1
            written += size
    return lines, written


def start_to_first_202(data_dir: Path) -> float:
    """Seconds from spawning the sidecar to a webhook answered 202."""
    port = free_port()
    env = {**os.environ, **SECRETS, "CC_DATA_DIR": str(data_dir)}
    body = b'{"pages":[{"page_name":"Home","action":"edited"}]}'
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "streaming.app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the sidecar exited with {proc.returncode}")
            if time.perf_counter() - started > 600:
                raise RuntimeError("no 202 within 600 s")
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/webhooks/github", data=body, timeout=5,
                                       headers=github_headers(body, "gollum", str(uuid.uuid4())))
            except requests.ConnectionError:
                time.sleep(0.005)
                continue
            if answer.status_code == 202:
                return time.perf_counter() - started
            raise RuntimeError(f"first webhook answered {answer.status_code}: {answer.text[:200]}")
    finally:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="size of the landing log (GB)")
    parser.add_argument("--runs", type=int, default=3, help="timed starts per case (median)")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the landing log in this folder")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="cc-bench-startup-"))
    try:
        empty = scratch / "empty"
        empty.mkdir()
        full = args.keep or scratch / "full"
        landing = full / "landing" / "webhooks"
        if not landing.is_dir() or not any(landing.glob("date=*.jsonl")):
            t0 = time.perf_counter()
            lines, size = write_landing(full, int(args.gb * 1e9))
            print(f"wrote {lines:,} landing lines, {size / 1e9:.2f} GB, in {time.perf_counter() - t0:.0f} s")
        size = sum(p.stat().st_size for p in landing.glob("date=*.jsonl"))
        shutil.rmtree(full / "landing" / "_index", ignore_errors=True)
        first = start_to_first_202(full)
        rows = [("landing log", "start → first 202 (median)", "runs")]
        empties = [start_to_first_202(empty) for _ in range(args.runs)]
        fulls = [start_to_first_202(full) for _ in range(args.runs)]
        rows += [("empty", f"{statistics.median(empties):.2f} s", ", ".join(f"{t:.2f}" for t in empties)),
                 (f"{size / 1e9:.2f} GB, first start (builds the dedupe index)", f"{first:.2f} s", "1"),
                 (f"{size / 1e9:.2f} GB, indexed", f"{statistics.median(fulls):.2f} s",
                  ", ".join(f"{t:.2f}" for t in fulls))]
        width = max(len(r[0]) for r in rows)
        for name, median, runs in rows:
            print(f"{name:<{width}}  {median:>26}  {runs}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
