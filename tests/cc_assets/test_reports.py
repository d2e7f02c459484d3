"""The operations reports from the tiered world (tests/cc_assets/conftest.py, built once per session):
the HTML page with its inline SVG charts, the PDF a reader opens, the XLSX against the marts, the
e-mail a real SMTP server receives (once per period), the week's seven days, the re-run's same
files, the sensor that asks for them after the builds, and the same report on Postgres."""

from __future__ import annotations

import io
import re
import shutil
from datetime import UTC, date, datetime
from email import message_from_bytes, policy

import duckdb
import openpyxl
import pypdf
import pytest
from aiosmtpd.controller import Controller
from dagster import AssetKey, DagsterInstance

from cc_alerts.model import Finding
from cc_alerts.store import AlertStore, alert_store_path
from cc_assets.reports import render
from cc_assets.reports.assets import build
from cc_assets.reports.data import Period
from resources.platform import PlatformResource
from resources.settings import Settings

DAY, WEEK = "2026-11-19", "2026-11-16"
CHART_TITLES = ["Event volume by source", "Workflows started and completed", "Cycle-time distribution",
                "Cost per agent", "Cost per workflow", "Cron health", "CI success", "Open alerts by severity"]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def inbox():
    """A real SMTP server on loopback; the messages it accepts."""
    messages: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, messages
    finally:
        controller.stop()


@pytest.fixture
def world(tiered, tmp_path):
    """A copy of the tiered world with two alerts: one open since the 18th, one resolved on the 19th."""
    data_dir = tmp_path / "data"
    shutil.copytree(tiered["data_dir"], data_dir)
    store = AlertStore(alert_store_path(data_dir))
    store.raise_alert(Finding("stale_data", "source:github", "critical", "github has not landed for 2 h"),
                      now=datetime(2026, 11, 18, 9))
    store.raise_alert(Finding("cron_failed", "job:backup", "warning", "backup failed"), now=datetime(2026, 11, 18, 10))
    store.resolve("cron_failed", "job:backup", now=datetime(2026, 11, 19, 8))
    store.close()
    return data_dir


def settings_for(data_dir, **env) -> Settings:
    return Settings.from_env({"CC_DATA_DIR": str(data_dir), **env})


def marts(data_dir, query: str, params=None) -> list[tuple]:
    with duckdb.connect(str(data_dir / "serving" / "marts.duckdb"), read_only=True) as con:
        return con.execute(query, params or {}).fetchall()


def test_formats_money_counts_durations_and_changes():
    assert render.money(142.6921) == "$142.69" and render.money(1234567.891) == "$1,234,567.89"
    assert render.count(1234567) == "1,234,567"
    assert render.duration(3.2) == "3h 12m" and render.duration(0.75) == "45m" and render.duration(52) == "2d 4h"
    from cc_assets.reports.data import Headline

    text, tone = render.change_text(Headline("cost", "Agent cost", 150.0, 100.0, "money", "down"), "week")
    assert (text, tone) == ("▲ up $50.00 (+50.0%) vs previous week ($100.00)", "bad")
    text, tone = render.change_text(Headline("done", "Completed", 80, 100, "count", "up"), "day")
    assert (text, tone) == ("▼ down 20 (-20.0%) vs previous day (100)", "bad")
    assert render.change_text(Headline("e", "Events", 5, 5, "count", None), "day")[0].startswith("= unchanged")


def test_daily_report_html_pdf_and_xlsx(world):
    settings = settings_for(world)
    out = build(settings, Period.of("daily", DAY))
    folder = settings.reports_dir / "daily" / DAY
    assert out["folder"] == folder
    page = (folder / "report.html").read_text()
    # Self-contained: charts inline as SVG, CSS inline, nothing fetched.
    assert len(re.findall(r"<svg\b", page)) >= 6 and out["charts"] >= 6
    assert "<style>" in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    for title in CHART_TITLES[:-1]:
        assert title.split(" (")[0] in page
    data = out["data"]
    (on_day,) = marts(world, "select count(*) from fct_workflows where cast(first_event_at as date) = $d", {"d": DAY})[0]
    assert data.headlines["workflows_started"].value == on_day
    events = sum(r["events"] for r in data.volume)
    assert f"{events:,}" in page and ("▲" in page or "▼" in page or "unchanged" in page)
    assert len(data.workflows) == 24 and data.headlines["open_alerts"].value == 1
    assert "github has not landed for 2 h" in page and "backup failed" not in page

    reader = pypdf.PdfReader(io.BytesIO((folder / "report.pdf").read_bytes()))
    text = " ".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) >= 2
    for title in CHART_TITLES:
        assert title.split(" (")[0] in text, title
    for h in data.headlines.values():
        assert h.label in text and render.value_text(h) in text
    drawn = sum(len(p.get_contents().get_data()) for p in reader.pages)
    assert drawn > 50_000  # the charts' vector paths, not just text

    book = openpyxl.load_workbook(folder / "report.xlsx", read_only=True)
    assert book.sheetnames == ["headlines", "event_volume", "workflows", "cycle_times", "cost_by_agent",
                               "cost_by_workflow", "cron_runs", "ci_runs", "open_alerts"]
    agents = list(book["cost_by_agent"].iter_rows(min_row=2, values_only=True))
    truth = marts(world, "select agent_name, sum(session_count), sum(cost_usd) from fct_agent_sessions_daily "
                         "where session_date = $d group by 1 order by 3 desc, 1", {"d": date.fromisoformat(DAY)})
    assert [(a, n, round(c, 4)) for a, n, _, c in agents] == [(a, n, float(round(c, 4))) for a, n, c in truth]
    completed = marts(world, "select workflow_id from fct_workflows where cast(completed_at as date) = $d "
                             "order by completed_at, workflow_id", {"d": DAY})
    assert [r[0] for r in book["cycle_times"].iter_rows(min_row=2, values_only=True)] == [r[0] for r in completed]
    runs = marts(world, "select count(*) from fct_cron_runs where cast(run_at as date) = $d", {"d": DAY})[0][0]
    assert sum(r[1] for r in book["cron_runs"].iter_rows(min_row=2, values_only=True)) == runs
    assert len(list(book["workflows"].iter_rows(min_row=2))) == 24
    assert runs > 0 and agents and completed
    for name in ("event_volume", "cost_by_workflow", "ci_runs"):
        assert (folder / f"{name}.csv").exists() and (folder / f"{name}.parquet").exists()


def test_weekly_report_covers_seven_days_and_is_the_same_on_rerun(world):
    settings = settings_for(world)
    period = Period.of("weekly", "2026-11-19")
    assert (period.start, period.end, period.key) == (date(2026, 11, 16), date(2026, 11, 23), WEEK)
    out = build(settings, period)
    data = out["data"]
    assert [r["bucket"].date() for r in data.workflows] == period.days and len(period.days) == 7
    assert {r["bucket"].date() for r in data.volume} == set(period.days)
    assert len({r["bucket"] for r in data.ci}) == 7
    assert data.period.previous().start == date(2026, 11, 9)
    first = {p.name: p.read_bytes() for p in out["folder"].iterdir()}
    again = build(settings, period)
    assert {p.name: p.read_bytes() for p in again["folder"].iterdir()} == first
    assert "week 47, 16 to 22 November 2026" in first["report.html"].decode()


def test_monthly_report_reads_every_day_of_the_month_through_the_tiers(world, tiered):
    # Warm from the 18th whatever today is: the days before come from the cold and archive tiers.
    warm_days = (datetime.now(UTC).date() - date(2026, 11, 18)).days
    settings = settings_for(world, CC_WARM_DAYS=str(warm_days))
    data = build(settings, Period.of("monthly", "2026-11-20"))["data"]
    assert data.period.key == "2026-11-01" and len(data.workflows) == 30 and data.period.previous().key == "2026-10-01"
    per_day: dict[str, int] = {}
    for r in data.volume:
        per_day[r["bucket"].date().isoformat()] = per_day.get(r["bucket"].date().isoformat(), 0) + r["events"]
    assert {d: n for d, n in per_day.items() if n} == {d: f.rows for d, f in tiered["truth"].items()
                                                       if "2026-11-16" <= d <= "2026-11-20"}
    assert data.tiers == ["cold and archive tier 2026-11-01 to 2026-11-17", "warm tier 2026-11-18 to 2026-11-30"]


def test_email_goes_once_per_period_with_pdf_and_xlsx(world, inbox):
    port, messages = inbox
    settings = settings_for(world, CC_REPORT_TO="ops@example.com,cto@example.com", CC_SMTP_PORT=str(port),
                            CC_REPORT_FROM="reports@example.com", CC_REPORT_BASE_URL="https://reports.example.com/r")
    period = Period.of("daily", DAY)
    out = build(settings, period)
    assert out["delivery"].sent and len(messages) == 1
    msg = messages[0]
    assert msg["To"] == "ops@example.com, cto@example.com" and msg["From"] == "reports@example.com"
    assert "Operations report, daily" in msg["Subject"]
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert html.count("<svg") >= 6
    files = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
    assert set(files) == {f"operations-daily-{DAY}.pdf", f"operations-daily-{DAY}.xlsx"}
    assert files[f"operations-daily-{DAY}.pdf"] == (out["folder"] / "report.pdf").read_bytes()
    assert out["link"] == f"https://reports.example.com/r/daily/{DAY}/report.html"
    assert out["link"] in msg.get_body(preferencelist=("plain",)).get_content()
    # Re-materializing the period does not send again, unless asked.
    again = build(settings, period)
    assert not again["delivery"].sent and "already sent" in again["delivery"].reason and len(messages) == 1
    resent = build(settings, period, resend=True)
    assert resent["delivery"].sent and len(messages) == 2


def test_asset_metadata_and_lake_copy(world, tmp_path):
    from cc_assets.definitions import defs

    platform = PlatformResource(data_dir=str(world), warehouse="duckdb")
    lake = tmp_path / "lake-copy"
    with pytest.MonkeyPatch.context() as env, DagsterInstance.ephemeral() as instance:
        env.setenv("CC_LAKE_URL", str(lake))
        result = defs.resolve_job_def("reports_weekly_job").execute_in_process(
            instance=instance, resources={"platform": platform}, partition_key=WEEK)
        assert result.success
    (event,) = [e for e in result.get_asset_materialization_events()]
    meta = event.event_specific_data.materialization.metadata
    assert event.event_specific_data.materialization.asset_key == AssetKey(["reports", "weekly"])
    assert "| Events |" in meta["preview"].value and "vs previous week" in meta["preview"].value
    assert meta["html"].value.endswith(f"weekly/{WEEK}/report.html") and meta["rows/workflows"].value == 7
    assert meta["charts"].value >= 6
    assert (lake / "reports" / "weekly" / WEEK / "report.pdf").exists()
    assert meta["link"].value == str(lake) + f"/reports/weekly/{WEEK}/report.html"


def test_the_sensor_asks_for_finished_periods_after_both_builds():
    from dagster import DagsterRunStatus

    from sensors.reports import due

    with DagsterInstance.ephemeral() as instance:
        now = datetime(2026, 11, 23, 2, 0)
        assert due(instance, now) == []  # nothing built since the periods ended
        for job in ("transform_job", "tiers_daily_job"):
            run = instance.create_run_for_job(job_def=_job(job), status=DagsterRunStatus.SUCCESS)
            assert run.status == DagsterRunStatus.SUCCESS
        keys = {(r.job_name, r.partition_key, r.run_key) for r in due(instance, datetime.now(UTC).replace(tzinfo=None))}
    assert {job for job, _, _ in keys} == {"reports_daily_job", "reports_weekly_job", "reports_monthly_job"}
    assert all(key.startswith(("daily-", "weekly-", "monthly-")) for _, _, key in keys)


def _job(name: str):
    from cc_assets.definitions import defs

    return defs.resolve_job_def(name)


@pytest.mark.postgres
def test_the_same_report_reads_postgres_marts_and_the_postgres_alert_store(world, pg_database, tmp_path):
    """The marts in CC_PG_SCHEMA (copied from the serving snapshot) and alerts in CC_APP_SCHEMA."""
    from cc_alerts.store import PostgresAlertStore
    from resources.storage.catalog import load_postgres_extension

    schema = "reports_pg"
    duck = duckdb.connect()
    try:
        load_postgres_extension(duck)
        duck.execute(f"attach '{world / 'serving' / 'marts.duckdb'}' as marts (read_only)")
        duck.execute(f"attach '{pg_database}' as pg (type postgres)")
        duck.execute(f"create schema if not exists pg.{schema}")
        for (table,) in duck.execute("select table_name from information_schema.tables "
                                     "where table_catalog = 'marts' and table_schema = 'main'").fetchall():
            duck.execute(f"create or replace table pg.{schema}.{table} as select * from marts.main.{table}")
        duck.execute("detach pg")
    finally:
        duck.close()
    store = PostgresAlertStore(pg_database, "reports_app")
    store.raise_alert(Finding("stale_data", "source:github", "critical", "github has not landed"),
                      now=datetime(2026, 11, 18, 9))
    store.close()
    on_pg = settings_for(tmp_path / "pg-data", CC_WAREHOUSE="postgres", CC_PG_URL=pg_database,
                         CC_PG_SCHEMA=schema, CC_APP_SCHEMA="reports_app", CC_WARM_DAYS="100000")
    on_duck = settings_for(world, CC_WARM_DAYS="100000")
    period = Period.of("daily", DAY)
    pg, dk = build(on_pg, period)["data"], build(on_duck, period)["data"]
    assert {k: h.value for k, h in pg.headlines.items() if k != "open_alerts"} == \
        {k: h.value for k, h in dk.headlines.items() if k != "open_alerts"}
    assert pg.headlines["open_alerts"].value == 1 and pg.cost_by_agent == dk.cost_by_agent
    assert (on_pg.reports_dir / "daily" / DAY / "report.pdf").exists()
