"""The operations reports as Dagster assets: `reports/daily`, `reports/weekly` (Monday to Sunday) and
`reports/monthly`, each partitioned by its period (the key is the period's first day), each
materialization rendering the period's HTML, PDF and extracts, copying them to the lake, and
e-mailing them once (sensors/reports.py requests them after the build that covers the period).
"""


from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    MonthlyPartitionsDefinition,
    PartitionsDefinition,
    WeeklyPartitionsDefinition,
    asset,
)

from cc_alerts.store import alert_store
from cc_assets.reports import charts, deliver, render
from cc_assets.reports.data import KINDS, Period, ReportData, collect
from cc_assets.tiers import ARCHIVE_KEY, COLD_KEY
from resources.platform import PlatformResource
from resources.settings import Settings
from resources.storage.history import HistoryReader

GROUP = "reports"
REPORT_KEYS = {kind: AssetKey(["reports", kind]) for kind in KINDS}
# Each includes the period under way (end_offset=1): a report of it says "to date"; the sensor only
# asks for periods that are over. Weeks start on Monday (day_offset=1).
REPORT_PARTITIONS: dict[str, PartitionsDefinition] = {
    "daily": DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1),
    "weekly": WeeklyPartitionsDefinition(start_date="2026-01-05", day_offset=1, end_offset=1),
    "monthly": MonthlyPartitionsDefinition(start_date="2026-01-01", end_offset=1),
}
# What the reports read: the marts (through the serving snapshot on DuckDB) and the volume tiers.
MARTS = ["fct_event_volume_1d", "fct_event_volume_1m", "fct_workflows", "fct_agent_sessions_daily",
         "fct_workflow_session_costs_daily", "fct_cron_runs", "fct_ci_runs", "dashboard_overview"]
DEPS = [COLD_KEY, ARCHIVE_KEY, AssetKey(["serving", "marts"]), *(AssetKey(m) for m in MARTS)]


NOUNS = {"daily": "day", "weekly": "week", "monthly": "month"}


class ReportConfig(Config):
    resend: bool = False  # e-mail the period again even though its sent-marker says it went


def headline_markdown(data: ReportData) -> str:
    noun = data.period.noun
    lines = [f"**{data.period.label}**{'' if data.complete else ' (to date)'}", "",
             f"| headline | value | vs previous {noun} |", "|---|---:|---|"]
    for h in data.headlines.values():
        change, _ = render.change_text(h, noun)
        lines.append(f"| {h.label} | {render.value_text(h)} | {change.replace('|', '/')} |")
    return "\n".join(lines)


def build(settings: Settings, period: Period, resend: bool = False) -> dict:
    """Render, write, copy and deliver one period's report; what happened, for the metadata."""
    store = alert_store(settings)
    try:
        data = collect(HistoryReader(settings), store, period)
    finally:
        store.close()
    top = settings.report_top_n
    drawn = charts.all_charts(data, top)
    files = render.files(data, drawn, top)
    folder = deliver.write_folder(deliver.folder_of(settings, period), files)
    lake_url = deliver.copy_to_lake(settings, period, files)
    where = deliver.link(settings, period, lake_url)
    subject = f"Operations report, {period.kind}: {period.label}"
    delivery = deliver.email(settings, period, subject, files, where, resend=resend)
    return {"data": data, "folder": folder, "files": files, "lake_url": lake_url, "link": where,
            "delivery": delivery, "charts": len(drawn)}


def _report(kind: str):
    @asset(key=REPORT_KEYS[kind], deps=DEPS, partitions_def=REPORT_PARTITIONS[kind], group_name=GROUP,
           backfill_policy=BackfillPolicy.single_run(), kinds={"html", "pdf", "xlsx"},
           description=f"The {kind} operations report: one HTML page with inline SVG charts, the same as PDF, "
                       "and its tables as CSV, XLSX and Parquet, in the reports folder of CC_DATA_DIR "
                       "(by kind and the period's first day); e-mailed once to CC_REPORT_TO. Headlines "
                       "(events, workflows, cycle time, cost, cron, CI, alerts) against the previous "
                       f"{NOUNS[kind]}.")
    def report(context: AssetExecutionContext, config: ReportConfig, platform: PlatformResource) -> MaterializeResult:
        settings = platform.settings()
        done = {}
        for key in context.partition_keys:
            period = Period.of(kind, date.fromisoformat(key))
            done[key] = out = build(settings, period, resend=config.resend)
            context.log.info(f"{kind} report for {key} in {out['folder']}; e-mail: {out['delivery'].reason}")
        last = done[context.partition_keys[-1]]
        data, folder = last["data"], last["folder"]
        meta = {
            "preview": MetadataValue.md(headline_markdown(data)),
            "html": MetadataValue.path(str(folder / "report.html")),
            "pdf": MetadataValue.path(str(folder / "report.pdf")),
            "xlsx": MetadataValue.path(str(folder / "report.xlsx")),
            "folder": MetadataValue.path(str(folder)),
            "link": MetadataValue.url(last["link"]) if "://" in last["link"] else MetadataValue.path(last["link"]),
            "period": f"{data.period.start} to {data.period.end} (exclusive)",
            "complete": data.complete,
            "charts": last["charts"],
            "email": last["delivery"].reason,
            **{f"rows/{name}": len(rows) for name, rows in data.tables().items()},
        }
        if last["lake_url"]:
            meta["lake"] = MetadataValue.url(last["lake_url"])
        if len(done) > 1:
            meta["periods"] = MetadataValue.json({k: str(v["folder"]) for k, v in done.items()})
        return MaterializeResult(metadata=meta)

    return report


report_assets = [_report(kind) for kind in KINDS]
