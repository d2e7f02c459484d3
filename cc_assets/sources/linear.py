"""Linear's raw assets: issues and comments (incremental), cycles, teams and users (snapshots)."""

from __future__ import annotations

from collections.abc import Iterator

from cc_assets.incremental import Incremental
from cc_assets.partitions import Window
from cc_assets.raw import Fetch, RawSpec, snapshot
from cc_events.registry import RAW_TABLES
from resources.platform import PlatformResource


def fetch_linear_issues(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    for item in platform.linear().issues(window.start_for("linear/issues"), window.end):
        yield item, {}, None


def fetch_linear_comments(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    for item in platform.linear().comments(window.start_for("linear/comments"), window.end):
        yield item, {}, None


def fetch_linear_cycles(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from snapshot(list(platform.linear().cycles()), window)


def fetch_linear_teams(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from snapshot(list(platform.linear().teams()), window)


def fetch_linear_users(platform: PlatformResource, window: Window) -> Iterator[Fetch]:
    yield from snapshot(list(platform.linear().users()), window)


SPECS = [
    RawSpec(RAW_TABLES["linear", "issues"], fetch_linear_issues, "updated_at",
            incremental=Incremental(lambda row: "linear/issues", "updated_at", ("id",))),
    RawSpec(RAW_TABLES["linear", "comments"], fetch_linear_comments, "updated_at",
            incremental=Incremental(lambda row: "linear/comments", "updated_at", ("id",))),
    RawSpec(RAW_TABLES["linear", "cycles"], fetch_linear_cycles, None),
    RawSpec(RAW_TABLES["linear", "teams"], fetch_linear_teams, None),
    RawSpec(RAW_TABLES["linear", "users"], fetch_linear_users, None),
]
