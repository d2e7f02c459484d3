"""GitHub over REST and over GraphQL on one sandbox world: requests by route, rows, and each raw
asset's wall time, for the README's GitHub source section and docs/benchmarks.md.

Usage: python -m scripts.bench_github_api [--events 20000] [--days 7]
Runs `github_job` over the whole window once with `CC_GITHUB_API=rest`, once with `graphql`, each
into a fresh data folder, against the same sandbox. Prints one table; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPLACED = ("pulls", "reviews", "pull_commits", "check_runs")  # the REST routes GraphQL stands in for


def _land(api: str, sandbox, data_dir: Path, days: list) -> tuple[dict, dict, float, int]:
    from dagster import DagsterInstance

    from cc_assets.definitions import defs
    from resources.platform import PlatformResource

    os.environ["CC_GITHUB_API"] = api
    platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url)
    tags = {"dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat()}
    info = sandbox.info()
    before, points = info["github_requests"], info["github_points_spent"]
    with DagsterInstance.ephemeral() as instance:
        started = time.perf_counter()
        result = defs.resolve_job_def("github_job").execute_in_process(
            instance=instance, tags=tags, resources={"platform": platform}, raise_on_error=True)
        wall = time.perf_counter() - started
        steps: dict[str, list] = {}
        for record in instance.all_logs(result.run_id):
            event = record.dagster_event
            if event is not None and event.step_key and event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
                steps.setdefault(event.step_key, []).append(record.timestamp)
    info = sandbox.info()
    after, points = info["github_requests"], info["github_points_spent"] - points
    rows = {}
    for step, stamps in steps.items():
        if not step.startswith("raw__github__"):
            continue
        landed = next((m.metadata["rows_in_run"].value for m in result.asset_materializations_for_node(step)
                       if "rows_in_run" in m.metadata), 0)
        rows[step.removeprefix("raw__github__")] = (landed, max(stamps) - min(stamps))
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}, rows, wall, points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()

    from sandbox.process import run_sandbox

    end = datetime.now(UTC).replace(tzinfo=None, minute=0, second=0, microsecond=0)
    days = [(end - timedelta(days=n)).date() for n in range(args.days, -1, -1)]
    with tempfile.TemporaryDirectory() as tmp, run_sandbox(Path(tmp) / "sandbox", events=args.events,
                                                           days=args.days, end=end, rate_limit=10**9) as sandbox:
        # Requests measured, not paced: `rate_limit` lifts both GitHub budgets (a real hour holds 5,000).
        results = {api: _land(api, sandbox, Path(tmp) / api, days) for api in ("rest", "graphql")}
    print(f"GitHub, {args.events:,} sandbox events over {args.days} days (loaded machine figures)")
    for api, (requests, rows, wall, points) in results.items():
        replaced = sum(requests.get(r, 0) for r in (*REPLACED, "graphql"))
        print(f"\n{api}: {sum(requests.values()):,} requests, {replaced:,} for pull requests, reviews, PR commits"
              f" and check runs ({points:,} GraphQL points); github_job {wall:.1f} s")
        print("  requests by route: " + ", ".join(f"{k} {v:,}" for k, v in sorted(requests.items())))
        for table, (landed, seconds) in sorted(rows.items()):
            print(f"  {table:<14} {landed:>8,} rows {seconds:>7.1f} s")


if __name__ == "__main__":
    main()
