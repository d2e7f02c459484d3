"""Charlie's raw assets: the instance registry, each instance's health and its activity."""

from __future__ import annotations

from collections.abc import Iterator

from cc_assets.partitions import Window
from cc_assets.raw import Fetch, RawSpec, snapshot
from cc_events.registry import RAW_TABLES
from resources.platform import PlatformResource
from resources.storage.lake import Lake


def instances_in(lake: Lake, window: Window) -> list[str]:
    table = lake.read(("raw", "charlie", "instances"), window.days[-1])
    return sorted({r for r in table.column("id").to_pylist()}) if table is not None else []


def fetch_charlie_instances(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from snapshot(list(platform.charlie().instances()), window)


def fetch_charlie_health(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    charlie = platform.charlie()
    yield from snapshot([charlie.health(i) for i in instances_in(platform.lake(), window)], window)


def fetch_charlie_activity(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    charlie = platform.charlie()
    for instance in instances_in(platform.lake(), window):
        for item in charlie.activity(instance, window.start, window.end):
            yield item, {}, None


SPECS = [
    RawSpec(RAW_TABLES["charlie", "instances"], fetch_charlie_instances, None),
    RawSpec(RAW_TABLES["charlie", "health"], fetch_charlie_health, None, (("charlie", "instances"),)),
    RawSpec(RAW_TABLES["charlie", "activity"], fetch_charlie_activity, "occurred_at", (("charlie", "instances"),)),
]
