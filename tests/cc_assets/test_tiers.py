"""Storage tiers over several days of sandbox data: hot, warm, cold, archive, retention, history.

One sandbox and one pipeline run per session (the `tiered` fixture, tests/cc_assets/conftest.py,
shared with the pipeline's and the reports' tests); then the tier jobs as a user would run them:
a backfill of the whole range as one run of `tiers_daily_job`, hours into the hot tier, the month
into the archive, and retention at a date where some days are past it. Each test checks what an
operator would: partitions per tier, that a re-run changes nothing, that only verified partitions
are removed, that the manifest describes the data, and that the history interface agrees with
the lake whichever tier it reads.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance

from resources.platform import PlatformResource
from resources.settings import Settings
from resources.storage.history import HistoryReader
from resources.storage.hot import FileHotStore
from resources.storage.tiers import Fingerprint, TierStore


def settings_of(tiered, **changes) -> Settings:
    return Settings.from_env({"CC_DATA_DIR": str(tiered["data_dir"])}).model_copy(update=changes)


def materialization(result, key: list[str]):
    from dagster import AssetKey

    events = [e for e in result.get_asset_materialization_events()
              if e.event_specific_data.materialization.asset_key == AssetKey(key)]
    return events[-1].event_specific_data.materialization


def test_cold_tier_holds_every_landing_event_once_per_day(tiered, assets_world):
    partitions = assets_world.PARTITIONS
    tiers = TierStore.landing(settings_of(tiered))
    cold = tiers.cold_days()
    assert [d.isoformat() for d in sorted(cold)] == [d for d in sorted(tiered["truth"]) if d in partitions]
    for day in cold:
        assert Fingerprint.of(tiers.read_table(tiers.cold_path(day))) == tiered["truth"][day.isoformat()]
    meta = materialization(tiered["daily"], ["cold", "events"]).metadata
    assert meta["rows_moved"].value == sum(tiered["truth"][d].rows for d in partitions if d in tiered["truth"])
    assert meta["bytes_written"].value > 0


def test_rerun_of_a_tier_partition_is_idempotent(tiered, assets_world):
    partitions = assets_world.PARTITIONS
    settings = settings_of(tiered)
    tiers = TierStore.landing(settings)
    for day in partitions[1:3]:
        d = date.fromisoformat(day)
        assert Fingerprint.of(tiers.read_table(tiers.cold_path(d))) == tiered["truth"][day]
    with duckdb.connect(str(settings.data_dir / "serving" / "marts.duckdb"), read_only=True) as con:
        per_day = dict(con.execute("select cast(event_at as date)::varchar, count(*) from fct_events "
                                   "group by 1").fetchall())
        dupes = con.execute("select count(*) - count(distinct event_id) from fct_events").fetchone()[0]
        volume = dict(con.execute("select cast(bucket_start_at as date)::varchar, sum(event_count)::bigint "
                                  "from fct_event_volume_1d group by 1").fetchall())
        minutes = con.execute("select sum(event_count)::bigint from fct_event_volume_1m").fetchone()[0]
    assert dupes == 0
    assert per_day == {d: tiered["truth"][d].rows for d in partitions if d in tiered["truth"]}
    assert volume == per_day and minutes == sum(per_day.values())


def test_hot_tier_holds_the_hours_events_and_counters(tiered):
    store = FileHotStore(tiered["data_dir"] / "hot")
    assert store.hours() == ["2026-11-20T12", "2026-11-20T13", "2026-11-20T14"]
    landing = TierStore.landing(settings_of(tiered))
    from resources.storage.tier_moves import landing_events

    for hour in store.hours():
        start = datetime.strptime(hour, "%Y-%m-%dT%H")
        expected = landing_events(landing, start, start + timedelta(hours=1))
        events = store.hour_events(start)
        assert sorted(e["event_id"] for e in events) == sorted(expected.column("event_id").to_pylist())
        assert sum(store.counters(start).values()) == len(events)
    meta = materialization(tiered["hot"], ["hot", "events"]).metadata
    assert meta["backend"].value == "file" and meta["events"].value == sum(
        len(store.hour_events(datetime.strptime(h, "%Y-%m-%dT%H"))) for h in store.hours())


def test_archive_manifest_matches_the_data(tiered, assets_world):
    partitions = assets_world.PARTITIONS
    tiers = TierStore.landing(settings_of(tiered))
    manifest = tiers.manifest(date(2026, 11, 1))
    entry = manifest["files"][0]
    path = tiers.path(entry["path"])
    table = pq.read_table(path)
    assert entry["rows"] == table.num_rows == sum(f.rows for d, f in tiered["truth"].items() if d in partitions)
    assert entry["sha256"] == tiers.sha256(path) and entry["bytes"] == tiers.size(path)
    assert Fingerprint(entry["rows"], entry["checksum"]) == Fingerprint.of(table)
    assert entry["min_event_at"] == str(min(table.column("event_at").to_pylist()))
    assert entry["max_event_at"] == str(max(table.column("event_at").to_pylist()))
    assert manifest["days"] == {d: {"rows": f.rows, "checksum": f.checksum}
                                for d, f in tiered["truth"].items() if d in partitions}
    assert pq.read_metadata(path).row_group(0).column(0).compression == "ZSTD"


def test_history_reads_warm_recent_days_and_archive_older_ones(tiered, assets_world):
    partitions = assets_world.PARTITIONS
    settings = settings_of(tiered, warm_days=5)
    # "Today" 2026-11-23 with 5 warm days: the 18th onwards from warm, the 16th and 17th from the archive.
    reader = HistoryReader(settings, today=date(2026, 11, 23))
    volume = reader.event_volume(datetime(2026, 11, 1), datetime(2026, 12, 1), grain="day")
    per_day: dict[str, int] = {}
    tiers_used: dict[str, set] = {}
    for row in volume:
        day = row["bucket_start_at"].date().isoformat()
        per_day[day] = per_day.get(day, 0) + row["event_count"]
        tiers_used.setdefault(day, set()).add(row["tier"])
    assert per_day == {d: tiered["truth"][d].rows for d in partitions if d in tiered["truth"]}
    assert tiers_used["2026-11-16"] == {"history"} and tiers_used["2026-11-19"] == {"warm"}
    github = reader.events(datetime(2026, 11, 17, 12), datetime(2026, 11, 18, 12), source="github", limit=10_000)
    assert {e["tier"] for e in github} == {"history", "warm"}
    assert all(e["source"] == "github" for e in github) and github == sorted(github, key=lambda e: e["event_at"])


def test_history_reads_each_new_snapshot_a_build_swaps_in(tiered, tmp_path, assets_world):
    """The history reader keeps one DuckDB open between queries: a snapshot a build renames into
    place is read by the next query, even while something else in the process holds the old file
    open (DuckDB's instance cache would hand that one back), and the old file is let go."""
    from resources.storage.history import ENGINE
    from resources.storage.serving import export_snapshot, snapshot_path

    partitions = assets_world.PARTITIONS
    data_dir = tmp_path / "data"
    shutil.copytree(tiered["data_dir"], data_dir)
    settings = Settings.from_env({"CC_DATA_DIR": str(data_dir)}).model_copy(update={"warm_days": 30})
    reader = HistoryReader(settings, today=date(2026, 11, 23))
    window = (datetime(2026, 11, 16), datetime(2026, 11, 21))

    def per_day() -> dict[str, int]:
        out: dict[str, int] = {}
        for row in reader.event_volume(*window):
            day = row["bucket_start_at"].date().isoformat()
            out[day] = out.get(day, 0) + row["event_count"]
        return out

    before = per_day()
    assert before == {d: tiered["truth"][d].rows for d in partitions if d in tiered["truth"]}
    held = duckdb.connect(str(snapshot_path(settings)), read_only=True)  # as the sidecar's marts reader does
    try:
        with duckdb.connect(str(settings.duckdb_path)) as con:
            con.execute("delete from fct_event_volume_1d where cast(bucket_start_at as date) = '2026-11-18'")
        export_snapshot(settings.duckdb_path, snapshot_path(settings))
        assert per_day() == {d: n for d, n in before.items() if d != "2026-11-18"}
    finally:
        held.close()
    with ENGINE.cursor() as con:
        attached = con.execute("select count(*) from duckdb_databases() where path = ?",
                               [str(snapshot_path(settings))]).fetchone()[0]
    assert attached == 1  # the replaced file is detached once no query reads it
    snapshot_path(settings).unlink()
    assert per_day() == {}


def test_retention_removes_only_verified_partitions(tiered, tmp_path, assets_world):
    run = assets_world.run
    data_dir = tmp_path / "data"
    shutil.copytree(tiered["data_dir"], data_dir)
    platform = PlatformResource(data_dir=str(data_dir), warehouse="duckdb")
    settings = Settings.from_env({"CC_DATA_DIR": str(data_dir)})
    tiers = TierStore.landing(settings)
    # Warm day 17 no longer matches its cold copy (a partial rebuild): it must stay.
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute("delete from fct_events where event_id = (select min(event_id) from fct_events "
                    "where cast(event_at as date) = '2026-11-17')")
    # The archive's entry for day 17 no longer matches the cold file: the cold day must stay.
    manifest = tiers.manifest(date(2026, 11, 1))
    manifest["days"]["2026-11-17"]["rows"] += 1
    tiers.write_bytes(tiers.manifest_path(date(2026, 11, 1)), json.dumps(manifest).encode())
    cold_before = tiers.cold_days()
    rollup_16 = tiers.size(tiers.cold_path(date(2026, 11, 16), "event_volume_1h"))
    # As of these dates the 16th and 17th are past both retentions (30 warm days, 90 cold days).
    config = {"ops": {"retention__warm": {"config": {"as_of": "2026-12-18"}},
                      "retention__cold": {"config": {"as_of": "2027-02-16"}}}}
    with DagsterInstance.ephemeral() as instance:
        result = run("retention_job", platform, instance, run_config=config)
    assert result.success
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        warm_days = [r[0].isoformat() for r in con.execute(
            "select distinct cast(event_at as date) from fct_events order by 1").fetchall()]
    assert warm_days[0] == "2026-11-17" and "2026-11-16" not in warm_days
    warm_meta = materialization(result, ["retention", "warm"]).metadata
    assert list(warm_meta["moved"].value) == ["2026-11-16"] and "2026-11-17" in warm_meta["kept"].value
    assert sorted(d.isoformat() for d in tiers.cold_days()) == [d.isoformat() for d in sorted(cold_before)
                                                                if d != date(2026, 11, 16)]
    cold_meta = materialization(result, ["retention", "cold"]).metadata
    assert cold_meta["bytes_freed"].value == cold_before[date(2026, 11, 16)] + rollup_16 > rollup_16 > 0
    assert not tiers.exists(tiers.cold_path(date(2026, 11, 16), "event_volume_1h"))
    assert "2026-11-17" in cold_meta["kept"].value


def land_events(data_dir, day: date, events, ingested_at: datetime) -> None:
    """Normalized events (and their keys) as one more landing file of the day's partition."""
    from resources.storage.lake import EVENT_KEYS_SCHEMA, EVENTS_SCHEMA

    lineage = {"_partition_date": day, "_ingested_at": ingested_at}
    for table, schema, rows in (
            ("events", EVENTS_SCHEMA, [e.to_row() for e in events]),
            ("event_keys", EVENT_KEYS_SCHEMA, [k for e in events for k in e.key_rows()])):
        folder = data_dir / "lake" / "normalized" / table / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([{**r, **lineage} for r in rows], schema=schema),
                       folder / "part-webhooks.parquet")


def test_a_linear_state_change_seen_twice_is_one_event_in_every_tier(tiered, linear_webhooks, tmp_path,
                                                                     assets_world):
    """A state change the webhook pushed and the poll then found in the issue's history is one event
    in the warm tier (dbt pairs them) and in the cold tier (the move pairs them the same way), also
    when the pair straddles midnight: the days verify, and warm retention drops them."""
    from cc_events import NormalizeContext, normalize
    from cc_events.registry import normalize_delivery
    from resources.storage.tier_moves import landing_events
    from resources.storage.warm import WarmStore

    run, range_tags = assets_world.run, assets_world.range_tags
    data_dir = tmp_path / "data"
    shutil.copytree(tiered["data_dir"], data_dir)
    platform = PlatformResource(data_dir=str(data_dir), warehouse="duckdb")
    settings = Settings.from_env({"CC_DATA_DIR": str(data_dir)})
    tiers = TierStore.landing(settings)
    ctx = NormalizeContext()
    todo, started = linear_webhooks.TODO, linear_webhooks.STARTED
    # (issue, webhook's updatedAt, the poll's history entry): on the 16th, and across midnight.
    moves = [("lin-4242", "ENG-4242", "2026-11-16T10:30:00.000Z", "2026-11-16T10:30:00.120Z"),
             ("lin-4243", "ENG-4243", "2026-11-16T23:58:00.000Z", "2026-11-17T00:02:00.000Z")]
    polled, pushed = [], {}
    for issue_id, identifier, webhook_at, history_at in moves:
        [change] = normalize_delivery("linear", "Issue", linear_webhooks.state_changed(
            issue_id, identifier, started, webhook_at, todo), ctx)
        pushed[identifier] = change
        issue = linear_webhooks.issue_data(issue_id, identifier, started, history_at)
        issue = {**issue, "createdAt": "2026-11-16T09:00:00.000Z", "creator": {"id": "user-ann", "name": "Ann Lee"},
                 "history": {"nodes": [{"id": f"h-{identifier}", "createdAt": history_at,
                                        "actor": {"id": "user-ann", "name": "Ann Lee"},
                                        "fromState": todo, "toState": started}]}}
        polled += normalize("linear", "issues", issue, ctx)
    # The webhooks land on the 16th as they come; the poll lands the issues in the 17th's partition.
    land_events(data_dir, date(2026, 11, 16), list(pushed.values()), datetime(2026, 11, 16, 23, 59))
    land_events(data_dir, date(2026, 11, 17), polled, datetime(2026, 11, 17, 0, 30))
    history_ids = {f"linear:history:h-{identifier}" for _, identifier, *_ in moves}
    assert history_ids <= {e.id for e in polled}

    with DagsterInstance.ephemeral() as instance:
        assert run("transform_job", platform, instance).success
        assert run("tiers_daily_job", platform, instance, tags=range_tags("2026-11-16", "2026-11-17")).success
        warm = WarmStore(settings)
        for day in (date(2026, 11, 16), date(2026, 11, 17)):
            cold = tiers.read_table(tiers.cold_path(day))
            ids = set(cold.column("event_id").to_pylist())
            # Each pair once, under the webhook's id, with the poll's time and the old state's name.
            assert not ids & history_ids
            assert Fingerprint.of(cold) == warm.fingerprint(day)
            start = datetime.combine(day, datetime.min.time())
            assert Fingerprint.of(landing_events(tiers, start, start + timedelta(days=1))) == Fingerprint.of(cold)
        cold_16 = tiers.read_table(tiers.cold_path(date(2026, 11, 16))).to_pylist()
        cold_17 = tiers.read_table(tiers.cold_path(date(2026, 11, 17))).to_pylist()
        same_day = [r for r in cold_16 if r["event_id"] == pushed["ENG-4242"].id]
        straddling = [r for r in cold_17 if r["event_id"] == pushed["ENG-4243"].id]
        assert [(r["event_at"], json.loads(r["payload"])["from"]) for r in same_day + straddling] == [
            (datetime(2026, 11, 16, 10, 30, 0, 120000), "Todo"), (datetime(2026, 11, 17, 0, 2), "Todo")]
        assert pushed["ENG-4243"].id not in {r["event_id"] for r in cold_16}
        result = run("retention_job", platform, instance, run_config={
            "ops": {"retention__warm": {"config": {"as_of": "2026-12-18"}},
                    "retention__cold": {"config": {"as_of": "2026-11-23"}}}})
    assert result.success
    meta = materialization(result, ["retention", "warm"]).metadata
    assert sorted(meta["moved"].value) == ["2026-11-16", "2026-11-17"] and meta["kept"].value == {}
    assert date(2026, 11, 16) not in warm.days() and date(2026, 11, 17) not in warm.days()


def test_analyst_catalog_answers_the_readme_questions_while_dbt_holds_the_warehouse(tiered, assets_world):
    import subprocess
    import sys
    from pathlib import Path

    from resources.storage.catalog import open_catalog
    from scripts.sql import QUESTIONS

    partitions = assets_world.PARTITIONS
    settings = settings_of(tiered)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    # dbt holds warehouse.duckdb read-write for a whole build: so does this process.
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(120)", str(settings.duckdb_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        con = open_catalog(settings)
        answers = {}
        for question, query in QUESTIONS:
            assert query in readme, f"README does not show the SQL of: {question}"
            answers[question] = con.execute(query).fetchall()
    finally:
        holder.kill()
        holder.wait()
    active, per_day, _charlie, merges, tiers = answers.values()
    assert active and all(row[4] is not None for row in active)
    assert sum(row[2] for row in per_day) == sum(f.rows for d, f in tiered["truth"].items() if d in partitions)
    assert merges and all(row[3].total_seconds() >= 0 for row in merges)
    held = {row[0]: row for row in tiers}
    assert set(held) == {"landing", "cold", "archive"} and held["cold"][2] == held["archive"][2]
    # Every tier and mart is a relation of its own too.
    assert con.execute("select count(*) from fct_events").fetchone()[0] == held["cold"][2]
    assert con.execute("select count(*) from hot_events").fetchone()[0] > 0
    assert con.execute("select count(*) from raw_github__pull_requests").fetchone()[0] > 0
    assert con.execute("select rows from archive_manifests").fetchone()[0] == held["archive"][2]


def catalog_cli(catalog, *args: str, cwd=None):
    """The DuckDB shell from PyPI's duckdb-cli (beside this Python), read-only on the catalog file."""
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "duckdb"
    return subprocess.run([str(cli), "-readonly", str(catalog), *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def dbt_marts(*folders: str) -> set[str]:
    """Every mart, from the dbt project's model folders (marts/** and the warm tier's facts)."""
    from pathlib import Path

    models = Path(__file__).resolve().parents[2] / "dbt_project" / "models"
    return {p.stem for folder in folders or ("marts", "warm") for p in (models / folder).rglob("*.sql")}


def test_catalog_file_opens_in_the_duckdb_cli_while_dbt_holds_the_warehouse(tiered, tmp_path, assets_world):
    import os
    import subprocess
    import sys
    from pathlib import Path

    partitions = assets_world.PARTITIONS
    settings = settings_of(tiered)
    catalog = settings.catalog_file
    assert {"dim_cycles", "fct_agent_session_costs", "fct_cron_runs", "fct_workflow_session_costs"} <= dbt_marts()
    # transform_job builds the marts (the warm facts come with the tier jobs, which ran after it).
    assert dbt_marts("marts") <= tiered["catalog_after_build"]
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        workflows = con.execute("from fct_workflows order by workflow_id").to_arrow_table()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(120)", str(settings.duckdb_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        # The warehouse is locked: DuckDB refuses even a read-only open of it.
        with pytest.raises(duckdb.IOException):
            duckdb.connect(str(settings.duckdb_path), read_only=True)
        # `make sql` finds the catalog stale (the tier jobs moved files since the build) and rewrites it.
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CC_")}, "CC_DATA_DIR": str(settings.data_dir)}
        done = subprocess.run([sys.executable, "-m", "scripts.run", "scripts.sql", "-csv", "-c",
                               "select table_name from information_schema.tables order by 1"],
                              cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        listed = set(done.stdout.split()[1:])
        questions = subprocess.run([sys.executable, "-m", "scripts.run", "scripts.sql", "--questions"],
                                   cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True,
                                   text=True, timeout=300)
        assert questions.returncode == 0, questions.stderr
        # The plain DuckDB CLI on the file, from another directory: views use absolute paths.
        out = tmp_path / "fct_workflows.parquet"
        copied = catalog_cli(catalog, "-c", f"copy (from fct_workflows order by workflow_id) to '{out}'", cwd=tmp_path)
        assert copied.returncode == 0, copied.stderr
        history = catalog_cli(catalog, "-csv", "-noheader", "-c", "select count(*) from events_history", cwd=tmp_path)
        assert history.returncode == 0, history.stderr
    finally:
        holder.kill()
        holder.wait()
    missing = dbt_marts() - listed
    assert not missing, f"marts the catalog file does not list: {sorted(missing)}"
    assert {"events_history", "event_volume_history", "cold_events", "archive_events", "landing_events",
            "hot_events", "raw_github__pull_requests", "tier_partitions", "archive_manifests",
            "catalog_info"} <= listed
    # Parquet keeps the values, not every DuckDB type (a HUGEINT sum comes back as a double).
    assert pq.read_table(out).to_pylist() == workflows.to_pylist() != []
    assert int(history.stdout) == sum(f.rows for d, f in tiered["truth"].items() if d in partitions)


def test_catalog_file_is_replaced_atomically(tiered, tmp_path):
    """A reader holding the old file keeps reading it while a new one is written and renamed over it."""
    from resources.storage.catalog import catalog_fingerprint, fingerprint, write_catalog

    settings = settings_of(tiered)
    target = tmp_path / "catalog.duckdb"
    first = write_catalog(settings, target)
    assert first.path == target and not first.left_out
    assert first.relations["fct_workflows"] == "table" and first.relations["events_history"] == "view"
    old = duckdb.connect(str(target), read_only=True)
    try:
        shell = catalog_cli(target, "-csv", "-noheader", "-c", "select count(*) from fct_workflows")
        count = old.execute("select count(*) from fct_workflows").fetchone()[0]
        assert int(shell.stdout) == count > 0
        second = write_catalog(settings, target)
        assert second.built_at > first.built_at
        # The old connection still reads the file it opened (its inode), whole.
        assert old.execute("select built_at from catalog_info").fetchone()[0] == first.built_at
        assert old.execute("select count(*) from fct_workflows").fetchone()[0] == count
        assert old.execute("select count(*) from events_history").fetchone()[0] > 0
    finally:
        old.close()
    with duckdb.connect(str(target), read_only=True) as new:
        assert new.execute("select built_at from catalog_info").fetchone()[0] == second.built_at
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.duckdb"]
    # Nothing changed since: the file is current, `make sql` would open it as it is.
    assert catalog_fingerprint(target) == fingerprint(settings)


def test_corrupt_parquet_is_reported_and_quarantined(tiered, tmp_path, assets_world):
    run = assets_world.run
    data_dir = tmp_path / "data"
    shutil.copytree(tiered["data_dir"], data_dir)
    platform = PlatformResource(data_dir=str(data_dir), warehouse="duckdb")
    lake = data_dir / "lake"
    landing_file = lake / "normalized" / "events" / "date=2026-11-19" / "part-0.parquet"
    truncated = landing_file.with_name("part-1.parquet")
    truncated.write_bytes(landing_file.read_bytes()[: landing_file.stat().st_size // 2])
    cold_file = lake / "cold" / "events" / "date=2026-11-18" / "part-0.parquet"
    cold_file.write_bytes(b"PAR1" + b"\0" * 64 + cold_file.read_bytes()[-200:])
    with DagsterInstance.ephemeral() as instance:
        blocked = run("tiers_daily_job", platform, instance, partition_key="2026-11-19")
        assert not blocked.success
        failure = next(e for e in blocked.all_events if e.is_step_failure)
        assert "part-1.parquet" in str(failure.event_specific_data.error)
        scan = run("lake_scan_job", platform, instance)
        (evaluation,) = scan.get_asset_check_evaluations()
        assert not evaluation.passed
        quarantined = evaluation.metadata["quarantined"].value
        assert set(quarantined) == {"normalized/events/date=2026-11-19/part-1.parquet",
                                    "cold/events/date=2026-11-18/part-0.parquet"}
        for path, info in quarantined.items():
            assert not (lake / path).exists() and (lake / info["moved_to"]).exists()
            note = json.loads((lake / (info["moved_to"] + ".reason.json")).read_text())
            assert note["path"] == path and note["reason"]
        # With the bad file out of the way the move goes through; a second scan finds nothing.
        assert run("tiers_daily_job", platform, instance, partition_key="2026-11-19").success
        (clean,) = run("lake_scan_job", platform, instance).get_asset_check_evaluations()
        assert clean.passed


# --- the same tiers on Redis, S3 and Postgres -----------------------------------------------------


def test_hot_tier_in_redis_uses_the_key_conventions_and_ttl(tiered, redis_url, assets_world):
    import redis

    run, range_tags = assets_world.run, assets_world.range_tags
    client = redis.Redis.from_url(redis_url)
    hours = ["2026-11-20T12", "2026-11-20T13"]
    keys = [f"{kind}:{h}" for h in hours for kind in ("events:hour", "counter:events")]
    client.delete(*keys)
    platform = tiered["platform"]
    try:
        with pytest.MonkeyPatch.context() as env, DagsterInstance.ephemeral() as instance:
            env.setenv("CC_REDIS_URL", redis_url)
            env.setenv("CC_HOT_TTL_S", "600")
            for _ in range(2):  # a re-run replaces the hour, never adds to it
                assert run("hot_job", platform, instance, tags=range_tags("2026-11-20-12:00", "2026-11-20-13:00")).success
        files = FileHotStore(tiered["data_dir"] / "hot")
        for hour in hours:
            expected = files.hour_events(datetime.strptime(hour, "%Y-%m-%dT%H"))
            assert client.zcard(f"events:hour:{hour}") == len(expected) > 0
            counters = {k.decode(): int(v) for k, v in client.hgetall(f"counter:events:{hour}").items()}
            assert sum(counters.values()) == len(expected)
            assert 0 < client.ttl(f"events:hour:{hour}") <= 600
    finally:
        client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def s3_lake():
    """A real S3-compatible server on loopback with an empty bucket; the env that points the lake at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    client.create_bucket(Bucket="cc-lake")
    env = {"CC_LAKE_URL": "s3://cc-lake/prod", "CC_LAKE_S3_ENDPOINT": endpoint, "CC_LAKE_S3_REGION": "us-east-1",
           "CC_LAKE_S3_ACCESS_KEY_ID": "test", "CC_LAKE_S3_SECRET_ACCESS_KEY": "test"}
    try:
        yield client, env
    finally:
        server.stop()


def test_cold_and_archive_on_s3_through_the_same_code(tiered, s3_lake, tmp_path, assets_world):
    partitions, run, range_tags = assets_world.PARTITIONS, assets_world.run, assets_world.range_tags
    client, env = s3_lake
    data_dir = tmp_path / "data"
    shutil.copytree(tiered["data_dir"], data_dir)
    shutil.rmtree(data_dir / "lake" / "cold")
    shutil.rmtree(data_dir / "lake" / "archive")
    platform = PlatformResource(data_dir=str(data_dir), warehouse="duckdb")
    truth = {d: f for d, f in tiered["truth"].items() if d in partitions}
    with pytest.MonkeyPatch.context() as patch, DagsterInstance.ephemeral() as instance:
        for name, value in env.items():
            patch.setenv(name, value)
        settings = Settings.from_env({**env, "CC_DATA_DIR": str(data_dir)})
        assert run("tiers_daily_job", platform, instance, tags=range_tags(partitions[0], partitions[-1])).success
        assert run("archive_job", platform, instance, partition_key=assets_world.MONTH).success
        keys = {o["Key"] for o in client.list_objects_v2(Bucket="cc-lake", Prefix="prod/")["Contents"]}
        assert {f"prod/cold/events/date={d}/part-0.parquet" for d in truth} <= keys
        assert {"prod/archive/events/month=2026-11/part-0.parquet", "prod/archive/events/month=2026-11/manifest.json"} <= keys
        assert not (data_dir / "lake" / "cold").exists()
        tiers = TierStore.from_settings(settings)
        manifest = tiers.manifest(date(2026, 11, 1))
        assert manifest["days"] == {d: {"rows": f.rows, "checksum": f.checksum} for d, f in truth.items()}
        assert manifest["files"][0]["sha256"] == tiers.sha256(tiers.archive_path(date(2026, 11, 1)))
        # History and the analysts' catalog read S3 like a folder.
        reader = HistoryReader(settings.model_copy(update={"warm_days": 0}), today=date(2026, 11, 23))
        volume = reader.event_volume(datetime(2026, 11, 1), datetime(2026, 12, 1))
        assert {r["tier"] for r in volume} == {"history"}
        assert sum(r["event_count"] for r in volume) == sum(f.rows for f in truth.values())
        from resources.storage.catalog import open_catalog

        con = open_catalog(settings)
        assert con.execute("select count(*) from events_history").fetchone()[0] == sum(f.rows for f in truth.values())
        # The catalog file cannot read S3 itself: it copies the rollup and leaves the events out ...
        from resources.storage.catalog import write_catalog

        written = write_catalog(settings, tmp_path / "catalog.duckdb")
        assert written.left_out == ["events_history", "cold_events", "archive_events"]
        with duckdb.connect(str(written.path), read_only=True) as con:
            assert con.execute("select sum(event_count) from event_volume_history").fetchone()[0] == sum(
                f.rows for f in truth.values())
            assert con.execute("select left_out from catalog_info").fetchone()[0] == written.left_out
            assert con.execute("select count(*) from fct_workflows").fetchone()[0] > 0
        # ... and `make sql` reads them all in memory, through pyarrow.
        import os
        import subprocess
        import sys
        from pathlib import Path

        shell = subprocess.run([sys.executable, "-m", "scripts.run", "scripts.sql", "-csv", "-noheader", "-c",
                                "select count(*) from events_history"], cwd=Path(__file__).resolve().parents[2],
                               env={**{k: v for k, v in os.environ.items() if not k.startswith("CC_")}, **env,
                                    "CC_DATA_DIR": str(data_dir)}, capture_output=True, text=True, timeout=300)
        assert shell.returncode == 0, shell.stderr
        assert int(shell.stdout) == sum(f.rows for f in truth.values())
        # Retention deletes verified cold objects; a corrupt object is quarantined, also on S3.
        retention = run("retention_job", platform, instance, run_config={
            "ops": {"retention__cold": {"config": {"as_of": "2027-02-16"}},
                    "retention__warm": {"config": {"as_of": "2026-11-23"}}}})
        assert retention.success
        assert sorted(d.isoformat() for d in tiers.cold_days()) == [d for d in partitions if d >= "2026-11-18"]
        client.put_object(Bucket="cc-lake", Key="prod/cold/events/date=2026-11-19/part-9.parquet", Body=b"PAR1 not really")
        (scan,) = run("lake_scan_job", platform, instance).get_asset_check_evaluations()
        assert not scan.passed and list(scan.metadata["quarantined"].value) == [
            "cold/events/date=2026-11-19/part-9.parquet"]
        keys = {o["Key"] for o in client.list_objects_v2(Bucket="cc-lake", Prefix="prod/")["Contents"]}
        assert "prod/quarantine/cold/events/date=2026-11-19/part-9.parquet" in keys
        assert "prod/cold/events/date=2026-11-19/part-9.parquet" not in keys


@pytest.mark.postgres
def test_warm_tier_on_postgres_is_partitioned_by_day_and_retention_drops_partitions(tiered, pg_database, tmp_path,
                                                                                   assets_world):
    import psycopg

    from resources.storage.catalog import load_postgres_extension, open_catalog

    days, run, range_tags = assets_world.PARTITIONS, assets_world.run, assets_world.range_tags
    data_dir = tmp_path / "data"
    shutil.copytree(tiered["data_dir"], data_dir)
    # The warm models read fct_workflow_events, which transform_job builds; copy the DuckDB build's.
    with duckdb.connect() as con:
        load_postgres_extension(con)
        con.execute(f"attach '{settings_of(tiered).duckdb_path}' as wh (read_only)")
        con.execute(f"attach 'postgresql://{pg_database.split('://', 1)[1]}' as pg (type postgres)")
        con.execute("create schema if not exists pg.tiers")
        con.execute("create table pg.tiers.fct_workflow_events as select event_id, workflow_id, source, "
                    "event_type, actor_id, actor_name, actor_type, actor_instance_id, target_type, target_id, "
                    "target_title, target_url, event_at, ingested_at from wh.main.fct_workflow_events")
    platform = PlatformResource(data_dir=str(data_dir), warehouse="postgres", pg_url=pg_database)
    truth = {d: f for d, f in tiered["truth"].items() if d in days}

    def partitions(table: str) -> dict[str, int]:
        with psycopg.connect(pg_database) as conn:
            names = [r[0] for r in conn.execute(
                "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
                "join pg_class p on p.oid = i.inhparent where p.relname = %s order by 1", (table,)).fetchall()]
            return {n: conn.execute(f"select count(*) from tiers.{n}").fetchone()[0] for n in names}  # noqa: S608

    # Its own schema: the pipeline test builds the whole project into `analytics` of the same database.
    with pytest.MonkeyPatch.context() as env, DagsterInstance.ephemeral() as instance:
        env.setenv("CC_PG_SCHEMA", "tiers")
        for _ in range(2):  # the second run of the range replaces the same rows
            assert run("tiers_daily_job", platform, instance, tags=range_tags(days[0], days[-1])).success
        assert partitions("fct_events") == {f"fct_events_p{d.replace('-', '')}": f.rows for d, f in truth.items()}
        assert set(partitions("fct_event_volume_1m")) == {f"fct_event_volume_1m_p{d.replace('-', '')}" for d in truth}
        settings = Settings.from_env({"CC_DATA_DIR": str(data_dir), "CC_WAREHOUSE": "postgres",
                                      "CC_PG_URL": pg_database, "CC_PG_SCHEMA": "tiers"})
        reader = HistoryReader(settings.model_copy(update={"warm_days": 5}), today=date(2026, 11, 23))
        volume = reader.event_volume(datetime(2026, 11, 16), datetime(2026, 11, 21))
        assert {r["tier"] for r in volume} == {"history", "warm"}
        assert sum(r["event_count"] for r in volume) == sum(f.rows for f in truth.values())
        catalog = open_catalog(settings)
        assert catalog.execute("select count(*) from warm.tiers.fct_events").fetchone()[0] == sum(
            f.rows for f in truth.values())
        catalog.close()  # an open analyst session would hold the partitions (retention then waits, then skips)
        # The catalog file copies the marts out of Postgres (no session stays open on it).
        from resources.storage.catalog import write_catalog

        written = write_catalog(settings, tmp_path / "catalog.duckdb")
        assert written.rows["fct_events"] == sum(f.rows for f in truth.values())
        with duckdb.connect(str(written.path), read_only=True) as copy:
            assert copy.execute("select count(*) from fct_events").fetchone()[0] == written.rows["fct_events"]
        result = run("retention_job", platform, instance, run_config={
            "ops": {"retention__warm": {"config": {"as_of": "2026-12-18"}},
                    "retention__cold": {"config": {"as_of": "2026-11-23"}}}})
    assert result.success
    left = partitions("fct_events")
    assert sorted(left) == [f"fct_events_p{d.replace('-', '')}" for d in days if d >= "2026-11-18"]
    assert "fct_event_volume_1d_p20261116" not in partitions("fct_event_volume_1d")
    meta = materialization(result, ["retention", "warm"]).metadata
    assert sorted(meta["moved"].value) == ["2026-11-16", "2026-11-17"] and meta["bytes_freed"].value > 0
