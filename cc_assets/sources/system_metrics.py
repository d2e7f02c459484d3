"""Host metrics (pushed by `python -m resources.ingest.metrics_agent` into the landing log)."""

from __future__ import annotations

from collections.abc import Iterator

from cc_assets.partitions import Window
from cc_assets.raw import Fetch, RawSpec, from_landing
from cc_events.registry import RAW_TABLES
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.platform import PlatformResource


def fetch_system_metrics(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from from_landing(platform, METRICS_STREAM, window.days, lambda r: r.get("id"), shared=True)


SPECS = [RawSpec(RAW_TABLES["system", "metrics"], fetch_system_metrics, "sampled_at")]
