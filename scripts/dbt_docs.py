"""`make docs` / `make docs-generate`: the dbt docs site, generated without opening the warehouse.

    python -m scripts.dbt_docs             # generate, then serve on 127.0.0.1:$CC_DOCS_PORT (8580)
    python -m scripts.dbt_docs --no-serve  # generate only: $CC_DATA_DIR/docs/site/index.html

A dbt build holds `warehouse.duckdb` open read-write for minutes, and DuckDB then refuses every
other process, even read-only, so `dbt docs generate` against the warehouse fails while a build
runs. On DuckDB the site is generated against the profile's `docs` target instead,
`$CC_DATA_DIR/docs/warehouse.duckdb`, rebuilt each time:

1. `dbt run --empty --target docs`: every model created with its real materialization and column
   types and no rows (refs and sources read as `limit 0`; a second or two, the lake's Parquet
   footers only);
2. each source created there as an empty table with the columns and types of its Parquet files
   in the lake (`select * from read_parquet(...) limit 0`): dbt-duckdb reads external sources in
   place, so they are in no database and a catalog of the warehouse would have no types for them;
   a source with no partition landed yet gets its declared `data_type`s;
3. `dbt docs generate --static --target docs`: the catalog has every model and source with its
   column types, and `site/index.html` is one file with the manifest and catalog inside (no
   internet, no server needed: it opens from disk too).

The serving snapshot (`serving/marts.duckdb`) was the other candidate; it holds only the marts
the sidecar reads, so most models would have no columns in the catalog. On Postgres (MVCC:
readers never wait for a build) the site is generated against the warehouse itself.

Everything runs in this process through dbt's `dbtRunner` (the CLI's start-up costs ~4.5 s per
command), with its own target and log paths so a build's `target/` is never touched.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"


def docs_dir(data_dir: Path) -> Path:
    return data_dir / "docs"


def _dbt(args: list[str], target: str, out: Path) -> None:
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke([
        *args, "--quiet", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
        "--target", target, "--target-path", str(out / "target"), "--log-path", str(out / "logs"),
    ])
    if not result.success:
        reason = result.exception or "see " + str(out / "logs" / "dbt.log")
        raise SystemExit(f"dbt {' '.join(args)} --target {target} failed: {reason}")


def create_sources(database: Path, manifest: dict) -> dict[str, str]:
    """Each source of `manifest` as an empty table in `database` (schema and name as dbt names
    them): its lake files' columns and types, or its declared data_types when nothing landed.
    Returns source name -> "lake" or "declared"."""
    import duckdb

    made: dict[str, str] = {}
    con = duckdb.connect(str(database))
    try:
        for source in manifest["sources"].values():
            schema, name = source["schema"], source["identifier"]
            con.execute(f'create schema if not exists "{schema}"')
            table = f'"{schema}"."{name}"'
            try:  # the relation is dbt's own rendering of the source (read_parquet over the lake)
                con.execute(f"create or replace table {table} as select * from {source['relation_name']} limit 0")
                made[source["unique_id"]] = "lake"
            except duckdb.Error:  # no partition yet: read_parquet fails on a glob that matches nothing
                columns = ", ".join(f'"{c["name"]}" {c.get("data_type") or "varchar"}'
                                    for c in source["columns"].values())
                con.execute(f"create or replace table {table} ({columns})")
                made[source["unique_id"]] = "declared"
    finally:
        con.close()
    return made


def generate(settings) -> Path:
    """Write the site into `$CC_DATA_DIR/docs/site/`; returns its index.html."""
    os.environ.update(settings.dbt_env())
    out = docs_dir(settings.data_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if settings.warehouse == "duckdb":
        target = "docs"
        database = out / "warehouse.duckdb"
        for stale in (database, database.with_name(database.name + ".wal")):
            stale.unlink(missing_ok=True)
        _dbt(["run", "--empty"], target, out)
        manifest = json.loads((out / "target" / "manifest.json").read_text())
        made = create_sources(database, manifest)
        declared = sorted(k.removeprefix("source.command_center.") for k, v in made.items() if v == "declared")
        if declared:
            print(f"no partition landed yet, declared types used: {', '.join(declared)}", flush=True)
    else:
        target = "postgres"
    _dbt(["docs", "generate", "--static"], target, out)
    site = out / "site"
    site.mkdir(exist_ok=True)
    for name, source in (("index.html", "static_index.html"), ("manifest.json", "manifest.json"),
                         ("catalog.json", "catalog.json")):
        tmp = site / f".{name}.tmp"
        shutil.copyfile(out / "target" / source, tmp)
        os.replace(tmp, site / name)  # a reader of the site sees the old file or the new one
    print(f"dbt docs generated against target {target} in {time.monotonic() - started:.1f}s: {site / 'index.html'}",
          flush=True)
    return site / "index.html"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


def serve(site: Path, port: int) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(site)))
    print(f"dbt docs at http://127.0.0.1:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    from resources.settings import Settings
    from scripts.preflight import check_ports

    parser = argparse.ArgumentParser(prog="make docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-serve", action="store_true", help="only write $CC_DATA_DIR/docs/site/")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if settings.warehouse == "postgres":
        from scripts.preflight import check_postgres

        check_postgres(settings.pg_url, "CC_PG_URL", "start it or unset CC_WAREHOUSE")
    elif not any((settings.data_dir / "lake" / "normalized" / "events").glob("*/*.parquet")):
        # The staging views read the lake's Parquet files: the docs copy needs them as a build does.
        raise SystemExit(f"no data in {settings.data_dir}: run `make demo` first")
    if not args.no_serve:
        check_ports([(settings.docs_port, "dbt docs", "CC_DOCS_PORT")])
    index = generate(settings)
    if not args.no_serve:
        serve(index.parent, settings.docs_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
