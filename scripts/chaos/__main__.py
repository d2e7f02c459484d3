"""Run the chaos suite: `python -m scripts.chaos [--only NAME,...] [--scale S] [--list]`."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
import traceback

from scripts.chaos import Context, Row, Scenario, scratch

# One line per scenario module, in the order they run (cheap and independent ones first).
MODULES: list[str] = [
    "auth_attacks",
    "slowloris",
    "slow_ws_client",
    "durability",  # webhook_defects: issue 10's defects 1, 2, 3, 5 replayed
    "cdc_kill_resume",
    "postgres_restart",
    "source_outage_storm",
    "fuzz",
    "schemathesis_api",
    "kill_storm_duckdb",
    "kill_storm_postgres",
    "replicas_redis",
    "workers_redis",
    "replicas_pg",  # two hosts on one Postgres landing (CC_LANDING_URL)
]


def scenarios() -> list[Scenario]:
    return [importlib.import_module(f"scripts.chaos.{name}").SCENARIO for name in MODULES]


def _missing(needs: tuple[str, ...]) -> str | None:
    for need in needs:
        if need == "node" and shutil.which("node") is None:
            return "node is not installed"
        if need == "pg_ctl":
            from sandbox.pg_cluster import find_pg_bin

            if find_pg_bin() is None:
                return "the PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if need == "postgres":
            import psycopg

            url = os.environ.get("CC_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
            try:
                psycopg.connect(url, connect_timeout=3).close()
            except psycopg.OperationalError as exc:
                return f"no Postgres at {url}: {exc}".splitlines()[0]
        if need == "redis" and shutil.which("redis-server") is None:
            return "redis-server is not installed"
    return None


def table(rows: list[Row]) -> str:
    head = ("scenario", "attempts", "acked lost", "duplicated", "5xx", "wrongly accepted", "recovery", "notes")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * 6 + ["---"]) + "|"]
    for r in rows:
        recovery = "–" if r.recovery_s is None else f"{r.recovery_s:.1f} s"
        lines.append(f"| {r.scenario} | {r.attempts:,} | {r.acked_lost} | {r.duplicated} | {r.errors_5xx} | "
                     f"{r.wrongly_accepted} | {recovery} | {r.notes} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="comma-separated scenario names")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's time budget")
    parser.add_argument("--list", action="store_true", help="list the scenarios and their budgets")
    args = parser.parse_args(argv)
    chosen = scenarios()
    if args.list:
        for s in chosen:
            print(f"{s.name:28} {s.seconds:6.0f} s  needs: {', '.join(s.needs) or '-'}")
        return 0
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {s.name for s in chosen}
        if unknown:
            print(f"unknown scenario(s): {', '.join(sorted(unknown))}; see --list", file=sys.stderr)
            return 2
        chosen = [s for s in chosen if s.name in wanted]
    rows: list[Row] = []
    broken = False
    started = time.monotonic()
    for s in chosen:
        budget = s.seconds * args.scale
        print(f"▶ {s.name} (≤ {budget:.0f} s)", flush=True)
        problem = _missing(s.needs)
        if problem:
            rows.append(Row(s.name, notes=f"NOT RUN: {problem}"))
            broken = True
            print(f"  not run: {problem}", flush=True)
            continue
        t0 = time.monotonic()
        try:
            got = s.run(Context(scratch(s.name), budget))
        except Exception as exc:  # a scenario that cannot finish is a failure of the suite, with its reason
            traceback.print_exc()
            got = [Row(s.name, notes=f"CRASHED: {type(exc).__name__}: {exc}"[:200])]
            broken = True
        for row in got:
            print(f"  {row.scenario}: {row.attempts:,} attempts, lost {row.acked_lost}, dup {row.duplicated}, "
                  f"5xx {row.errors_5xx}, wrongly accepted {row.wrongly_accepted} ({time.monotonic() - t0:.0f} s)",
                  flush=True)
        rows.extend(got)
    print()
    print(table(rows))
    print(f"\n{len(rows)} rows in {time.monotonic() - started:.0f} s")
    failed = [r.scenario for r in rows if r.failed]
    if failed or broken:
        print(f"FAILED: {', '.join(failed) or 'a scenario did not run'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
