"""The operations reports (daily, weekly, monthly): data.py reads a period and the one before it,
charts.py draws it, render.py writes HTML, PDF and extracts, deliver.py files and e-mails them, and
assets.py makes them Dagster assets."""

from cc_assets.reports.assets import REPORT_KEYS, REPORT_PARTITIONS, report_assets

__all__ = ["REPORT_KEYS", "REPORT_PARTITIONS", "report_assets"]
