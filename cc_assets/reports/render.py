"""The report's files: one self-contained HTML page (CSS and SVG charts inline, nothing fetched), the
same page as a PDF (WeasyPrint), and the tables as CSV, XLSX and Parquet.

Every file is a function of the data alone (no "generated at" clock), so rendering a period twice
gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from jinja2 import Environment

from cc_assets.reports.charts import Chart
from cc_assets.reports.data import COLUMNS, Headline, ReportData

FIXED_TIME = datetime(2026, 1, 1)  # the XLSX's document properties: no clock in the file


# Formatting ---------------------------------------------------------------------------------------
def money(value: float | None) -> str:
    if value is None:
        return "–"
    return f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}"


def count(value: float | None) -> str:
    return "–" if value is None else f"{round(value):,}"


def duration(hours: float | None) -> str:
    """`3h 12m`, `2d 4h`, `45m`."""
    if hours is None:
        return "–"
    minutes = round(abs(hours) * 60)
    days, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    text = f"{days}d {h}h" if days else f"{h}h {m}m" if h else f"{m}m"
    return ("-" if hours < 0 else "") + text


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


FORMAT = {"count": count, "money": money, "hours": duration, "percent": percent}


def value_text(h: Headline) -> str:
    return FORMAT[h.unit](h.value)


def change_text(h: Headline, noun: str) -> tuple[str, str]:
    """The change in words with an arrow (colour is never the only signal), and its CSS class."""
    if h.value is None or h.previous is None:
        return f"no comparison (nothing the previous {noun})", "flat"
    change = h.change or 0
    if abs(change) < 1e-9:
        return f"= unchanged vs previous {noun}", "flat"
    size = (f"{abs(change):.1f} points" if h.unit == "percent" else
            FORMAT[h.unit](abs(change)) if h.unit != "count" else f"{round(abs(change)):,}")
    pct = f" ({change / abs(h.previous) * 100:+.1f}%)" if h.previous and h.unit != "percent" else ""
    arrow, word = ("▲", "up") if change > 0 else ("▼", "down")
    tone = "flat" if h.better is None else "good" if (change > 0) == (h.better == "up") else "bad"
    return f"{arrow} {word} {size}{pct} vs previous {noun} ({FORMAT[h.unit](h.previous)})", tone


def cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if column == "cost_usd":
        return money(value)
    if column == "cycle_time_hours":
        return duration(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# HTML ---------------------------------------------------------------------------------------------
CSS = """
@page { size: A4; margin: 14mm 12mm; @bottom-right { content: counter(page) " / " counter(pages); font-family: "DejaVu Sans", sans-serif;
  font-size: 8pt; color: #666; } }
body { font-family: "DejaVu Sans", Arial, sans-serif; color: #1d1d1f; margin: 0 auto; max-width: 1180px;
  padding: 16px; font-size: 13px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 22px 0 8px; border-bottom: 1px solid #ddd; }
h3 { font-size: 14px; margin: 0 0 6px; }
.meta { color: #555; margin: 0 0 14px; }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; }
.tile { flex: 1 1 200px; border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; break-inside: avoid; }
.tile .label { color: #555; font-size: 12px; } .tile .value { font-size: 22px; font-weight: bold; margin: 2px 0; }
.tile .change { font-size: 11.5px; } .good { color: #00734f; } .bad { color: #b34700; } .flat { color: #555; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
figure { flex: 1 1 520px; margin: 0; border: 1px solid #eee; border-radius: 6px; padding: 8px; break-inside: avoid; }
figure svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12px; margin-bottom: 8px; }
th, td { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 12px; }
@media print { body { padding: 0; max-width: none; font-size: 10px; }
  /* WeasyPrint moves a whole flex container to the next page: blocks and inline blocks break better. */
  .tiles, .charts { display: block; }
  .tile { display: inline-block; width: 23.5%; margin: 0 0.6% 6px 0; vertical-align: top; box-sizing: border-box; }
  .tile .value { font-size: 16px; } .tile .change { font-size: 9px; }
  figure { display: block; margin: 0 0 8px; padding: 4px 8px; } figure svg { width: 100%; }
  h2 { break-after: avoid; } }
"""

TEMPLATE = Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title><style>{{ css|safe }}</style></head>
<body>
<h1>{{ title }}</h1>
<p class="meta">{{ period }}{% if not complete %} (to date: the {{ noun }} is not over){% endif %} · times UTC ·
data as of {{ as_of }} (the last dbt build) · compared with the previous {{ noun }}</p>
<section aria-label="Headlines"><div class="tiles">
{% for h in headlines %}<div class="tile"><div class="label">{{ h.label }}</div>
<div class="value">{{ h.value }}</div><div class="change {{ h.tone }}">{{ h.change }}</div></div>
{% endfor %}</div></section>
<h2>Charts</h2>
<div class="charts">
{% for c in charts %}<figure role="img" aria-label="{{ c.alt }}"><h3>{{ c.title }}</h3>{{ c.svg|safe }}</figure>
{% endfor %}</div>
<h2>Open alerts ({{ alerts|length }})</h2>
{% if alerts %}<table><thead><tr><th>severity</th><th>state</th><th>subject</th><th>rule</th><th>message</th>
<th>open since</th></tr></thead><tbody>
{% for a in alerts %}<tr><td>{{ a.severity }}</td><td>{{ a.state }}</td><td>{{ a.subject }}</td><td>{{ a.rule }}</td>
<td>{{ a.message }}</td><td>{{ a.first_seen }}</td></tr>
{% endfor %}</tbody></table>{% else %}<p class="note">No alert was open at the end of the {{ noun }}.</p>{% endif %}
{% for t in tables %}<h2>{{ t.title }}</h2>
{% if t.rows %}<table><thead><tr>{% for c in t.columns %}<th class="{{ c.cls }}">{{ c.label }}</th>{% endfor %}
</tr></thead><tbody>{% for r in t.rows %}<tr>{% for v, c in r %}<td class="{{ c.cls }}">{{ v }}</td>{% endfor %}
</tr>{% endfor %}</tbody></table>{% else %}<p class="note">{{ t.empty }}</p>{% endif %}
{% endfor %}
<p class="note">Event volume read from the {{ tiers }}.{% if missing %} Not in the marts yet (run a dbt build):
{{ missing }}.{% endif %} Extracts of every table: report.xlsx, and a CSV and a Parquet file per table beside
this page.</p>
</body></html>
""")


def _table(title: str, rows: list[dict], columns: list[tuple[str, str]], empty: str, limit: int) -> dict:
    numeric = {"session_count", "tokens_total", "cost_usd", "runs", "succeeded", "failed", "running",
               "cycle_time_hours", "events"}
    cols = [{"label": label, "cls": "num" if key in numeric else ""} for key, label in columns]
    shown = [[(cell(r.get(key), key), c) for (key, _), c in zip(columns, cols, strict=True)] for r in rows[:limit]]
    if len(rows) > limit:
        title += f" (top {limit} of {len(rows):,})"
    return {"title": title, "columns": cols, "rows": shown, "empty": empty}


def html(data: ReportData, charts: list[Chart], top: int) -> str:
    p = data.period
    headlines = []
    for h in data.headlines.values():
        change, tone = change_text(h, p.noun)
        headlines.append({"label": h.label, "value": value_text(h), "change": change, "tone": tone})
    tables = [
        _table("Cost per agent", data.cost_by_agent, [("agent_name", "agent"), ("session_count", "sessions"),
                                                       ("tokens_total", "tokens"), ("cost_usd", "cost")],
               "No agent session started.", top),
        _table("Cost per workflow", data.cost_by_workflow,
               [("workflow_name", "workflow"), ("workflow_id", "id"), ("session_count", "sessions"),
                ("tokens_total", "tokens"), ("cost_usd", "cost")], "No agent session worked on a workflow.", top),
        _table("Cron jobs", data.cron, [("job_name", "job"), ("runs", "runs"), ("succeeded", "succeeded"),
                                        ("failed", "failed"), ("running", "running")], "No cron run.", top),
    ]
    alerts = [{**a, "first_seen": cell(a["first_seen"])} for a in data.alerts]
    return TEMPLATE.render(
        title=f"Operations report, {p.kind}: {p.key}", css=CSS, period=p.label, complete=data.complete, noun=p.noun,
        as_of=cell(data.as_of) or "unknown", headlines=headlines, charts=charts, alerts=alerts, tables=tables,
        tiers="; ".join(data.tiers) or "warm tier", missing=", ".join(data.missing))


def pdf(page: str) -> bytes:
    import weasyprint  # here: loading Pango costs ~0.3 s, only when a PDF is made

    return weasyprint.HTML(string=page, media_type="print").write_pdf()


# Extracts -----------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_csv(rows: list[dict], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (v.isoformat(sep=" ") if isinstance(v, datetime) else _plain(v)) for k, v in row.items()})
    return out.getvalue().encode()


ARROW = {"bucket": pa.timestamp("us"), "completed_at": pa.timestamp("us"), "first_seen": pa.timestamp("us"),
         "last_seen": pa.timestamp("us"), "value": pa.float64(), "previous": pa.float64(), "change": pa.float64(),
         "change_pct": pa.float64(), "cost_usd": pa.float64(), "cycle_time_hours": pa.float64()}
INTS = {"events", "started", "completed", "session_count", "tokens_total", "runs", "succeeded", "failed", "running",
        "other", "count"}


def to_parquet(rows: list[dict], columns: list[str]) -> bytes:
    schema = pa.schema([(c, ARROW.get(c, pa.int64() if c in INTS else pa.string())) for c in columns])
    table = pa.Table.from_pylist([{c: _plain(r.get(c)) for c in columns} for r in rows], schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def to_xlsx(data: ReportData) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "remove_timezone": True})
    book.set_properties({"title": f"Operations report, {data.period.kind}: {data.period.key}",
                         "created": FIXED_TIME})
    bold = book.add_format({"bold": True})
    formats = {"cost_usd": book.add_format({"num_format": "$#,##0.00"}),
               "datetime": book.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
               "int": book.add_format({"num_format": "#,##0"}),
               "float": book.add_format({"num_format": "#,##0.00"})}
    for name, rows in data.tables().items():
        columns = COLUMNS[name]
        sheet = book.add_worksheet(name)
        sheet.write_row(0, 0, columns, bold)
        sheet.freeze_panes(1, 0)
        for i, row in enumerate(rows, 1):
            for j, column in enumerate(columns):
                value = _plain(row.get(column))
                if value is None:
                    continue
                if isinstance(value, datetime):
                    sheet.write_datetime(i, j, value, formats["datetime"])
                elif isinstance(value, date):
                    sheet.write_string(i, j, value.isoformat())
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    fmt = formats["cost_usd"] if column == "cost_usd" else formats[
                        "int" if isinstance(value, int) else "float"]
                    sheet.write_number(i, j, value, fmt)
                else:
                    sheet.write_string(i, j, str(value))
        sheet.set_column(0, len(columns) - 1, 16)
        if rows:
            sheet.autofilter(0, 0, len(rows), len(columns) - 1)
    book.close()
    return out.getvalue()


def files(data: ReportData, charts: list[Chart], top: int) -> dict[str, bytes]:
    """Every file of the report, by name."""
    page = html(data, charts, top)
    out = {"report.html": page.encode(), "report.pdf": pdf(page), "report.xlsx": to_xlsx(data)}
    for name, rows in data.tables().items():
        out[f"{name}.csv"] = to_csv(rows, COLUMNS[name])
        out[f"{name}.parquet"] = to_parquet(rows, COLUMNS[name])
    return out
