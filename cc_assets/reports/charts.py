"""The report's charts: Vega-Altair specs rendered to SVG by vl-convert (no browser, no network), so
the HTML page carries them inline and WeasyPrint draws the same vectors into the PDF.

Each chart comes with its title outside the SVG (the page's heading, text a PDF reader extracts)
and a one-line text alternative for screen readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import altair as alt
import vl_convert

from cc_assets.reports.data import ReportData

WIDTH, HEIGHT = 560, 180
# Colour-blind-safe (Okabe-Ito); every status chart also says what it shows in its legend.
OK, BAD, OTHER = "#009E73", "#D55E00", "#999999"
SEVERITY_COLOURS = {"critical": "#D55E00", "warning": "#E69F00", "info": "#56B4E9"}


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    svg: str
    alt: str


def _values(rows: list[dict]) -> alt.Data:
    def plain(v: Any) -> Any:
        return v.isoformat() if isinstance(v, datetime) else v

    return alt.Data(values=[{k: plain(v) for k, v in r.items()} for r in rows])


def _time_axis(data: ReportData) -> alt.X:
    if data.period.grain == "hour":
        return alt.X("bucket:T", title="hour (UTC)", timeUnit="hours", axis=alt.Axis(format="%H:%M", labelAngle=0))
    return alt.X("bucket:T", title="day (UTC)", timeUnit="yearmonthdate",
                 axis=alt.Axis(format="%a %d" if data.period.kind == "weekly" else "%d", labelAngle=0))


def _svg(chart: alt.TopLevelMixin) -> str:
    spec = chart.properties(width=WIDTH, height=HEIGHT).configure(font="DejaVu Sans, Arial, sans-serif") \
        .configure_view(strokeWidth=0).to_dict()
    svg = vl_convert.vegalite_to_svg(spec)
    # Scale with the page (HTML) and the PDF's column: the drawing keeps its viewBox.
    return svg.replace('class="marks"', 'class="marks" preserveAspectRatio="xMinYMin meet"', 1)


def _empty(message: str) -> alt.Chart:
    return alt.Chart(alt.Data(values=[{"text": message}])).mark_text(size=14, color="#555").encode(text="text:N")


def event_volume(data: ReportData) -> Chart:
    chart = alt.Chart(_values(data.volume)).mark_bar().encode(
        x=_time_axis(data), y=alt.Y("sum(events):Q", title="events"),
        color=alt.Color("source:N", title="source", scale=alt.Scale(scheme="tableau10")),
        tooltip=["bucket:T", "source:N", "events:Q"])
    total = sum(r["events"] for r in data.volume)
    return Chart("event_volume", "Event volume by source", _svg(chart if data.volume else _empty("No events")),
                 f"Stacked bars of events per {data.period.grain} by source, {total:,} in all.")


def workflows(data: ReportData) -> Chart:
    rows = [{"bucket": r["bucket"], "what": what, "workflows": r[what]}
            for r in data.workflows for what in ("started", "completed")]
    chart = alt.Chart(_values(rows)).mark_line(point=True).encode(
        x=_time_axis(data), y=alt.Y("workflows:Q", title="workflows"),
        color=alt.Color("what:N", title="workflows", scale=alt.Scale(domain=["started", "completed"],
                                                                     range=["#0072B2", OK])),
        # Dashed and solid as well as coloured; the same title merges the two legends into one.
        strokeDash=alt.StrokeDash("what:N", title="workflows", scale=alt.Scale(domain=["started", "completed"],
                                                                               range=[[1, 0], [4, 2]])))
    return Chart("workflows", "Workflows started and completed", _svg(chart),
                 f"Lines of workflows started and completed per {data.period.grain}.")


def cycle_times(data: ReportData) -> Chart:
    hours = [{"hours": r["cycle_time_hours"]} for r in data.cycle_times if r["cycle_time_hours"] is not None]
    chart = alt.Chart(_values(hours)).mark_bar(color="#0072B2").encode(
        x=alt.X("hours:Q", bin=alt.Bin(maxbins=20), title="cycle time (hours, first event to completion)"),
        y=alt.Y("count():Q", title="workflows completed"))
    return Chart("cycle_times", "Cycle-time distribution",
                 _svg(chart if hours else _empty("No workflow completed")),
                 f"Histogram of the cycle times of the {len(hours)} workflows completed.")


def _cost(rows: list[dict], label: str, top: int, key: str, title: str) -> Chart:
    shown = [{"name": str(r.get(label) or r.get("workflow_id")), "cost_usd": r["cost_usd"]} for r in rows[:top]]
    chart = alt.Chart(_values(shown)).mark_bar(color="#CC79A7").encode(
        y=alt.Y("name:N", sort="-x", title="", axis=alt.Axis(labelLimit=260)),
        x=alt.X("cost_usd:Q", title="cost (USD)", axis=alt.Axis(format="$,.2f")),
        tooltip=["name:N", alt.Tooltip("cost_usd:Q", format="$,.2f")])
    return Chart(key, title, _svg(chart if shown else _empty("No agent sessions")),
                 f"Bars of session cost for the top {len(shown)} of {len(rows)}.")


def cost_by_agent(data: ReportData, top: int) -> Chart:
    return _cost(data.cost_by_agent, "agent_name", top, "cost_by_agent", f"Cost per agent (top {top})")


def cost_by_workflow(data: ReportData, top: int) -> Chart:
    return _cost(data.cost_by_workflow, "workflow_name", top, "cost_by_workflow", f"Cost per workflow (top {top})")


def _status_domain() -> alt.Scale:
    return alt.Scale(domain=["succeeded", "failed", "running", "other"], range=[OK, BAD, "#56B4E9", OTHER])


def cron_health(data: ReportData) -> Chart:
    rows = [{"job": r["job_name"], "status": s, "runs": r[s]} for r in data.cron for s in ("succeeded", "failed",
                                                                                           "running") if r[s]]
    chart = alt.Chart(_values(rows)).mark_bar().encode(
        y=alt.Y("job:N", title="", sort=alt.EncodingSortField("runs", op="sum", order="descending")),
        x=alt.X("sum(runs):Q", title="runs"), color=alt.Color("status:N", title="run", scale=_status_domain()))
    failed = sum(r["failed"] for r in data.cron)
    return Chart("cron_health", "Cron health", _svg(chart if rows else _empty("No cron runs")),
                 f"Stacked bars of cron runs per job by outcome; {failed:,} failed.")


def ci_success(data: ReportData) -> Chart:
    rows = [{"bucket": r["bucket"], "status": s, "runs": r[s]} for r in data.ci for s in ("succeeded", "failed",
                                                                                          "other")]
    chart = alt.Chart(_values(rows)).mark_bar().encode(
        x=_time_axis(data), y=alt.Y("sum(runs):Q", title="CI runs finished"),
        color=alt.Color("status:N", title="run", scale=_status_domain()))
    return Chart("ci_success", "CI success", _svg(chart if any(r["runs"] for r in rows) else _empty("No CI runs")),
                 f"Stacked bars of CI runs per {data.period.grain}: succeeded, failed, other.")


def open_alerts(data: ReportData) -> Chart:
    counts = {s: 0 for s in SEVERITY_COLOURS}
    for a in data.alerts:
        counts[a["severity"]] = counts.get(a["severity"], 0) + 1
    rows = [{"severity": s, "alerts": n} for s, n in counts.items()]
    chart = alt.Chart(_values(rows)).mark_bar().encode(
        x=alt.X("severity:N", sort=list(SEVERITY_COLOURS), title="severity", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("alerts:Q", title="open alerts", axis=alt.Axis(tickMinStep=1),
                scale=alt.Scale(domain=[0, max(1, *counts.values())])),
        color=alt.Color("severity:N", legend=None, scale=alt.Scale(domain=list(SEVERITY_COLOURS),
                                                                   range=list(SEVERITY_COLOURS.values()))))
    text = chart.mark_text(dy=-6).encode(text="alerts:Q", color=alt.value("#222"))
    return Chart("open_alerts", "Open alerts by severity", _svg(chart + text),
                 "Bars of alerts open at the period's end: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + ".")


def all_charts(data: ReportData, top: int = 10) -> list[Chart]:
    return [event_volume(data), workflows(data), cycle_times(data), cost_by_agent(data, top),
            cost_by_workflow(data, top), cron_health(data), ci_success(data), open_alerts(data)]
