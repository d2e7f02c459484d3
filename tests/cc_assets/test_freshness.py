"""The raw assets carry freshness policies with the sources' cadences, and the Dagster daemon's
freshness loop (what the UI shows) calls them Passing, Warning and Failing at the seeds' limits:
real-time sources past 5 minutes, change-driven ones warned at 5 and failing at 20, weather past
its 2-hour poll plus grace. The clock is Dagster's own, frozen and moved by the test."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import AssetKey, AssetMaterialization

from cc_assets.sources import raw_assets

ROOT = Path(__file__).resolve().parents[2]
HEALTH = AssetKey(["raw", "charlie", "health"])
PULLS = AssetKey(["raw", "github", "pull_requests"])
WEATHER = AssetKey(["raw", "weather", "opportunities"])
CODE = textwrap.dedent("""
    from dagster import Definitions
    from cc_assets.sources import raw_assets
    from resources.platform import PlatformResource
    defs = Definitions(assets=raw_assets, resources={"platform": PlatformResource()})
""")


def test_every_raw_asset_has_a_freshness_policy():
    missing = [spec.key.to_user_string() for asset in raw_assets for spec in asset.specs if not spec.freshness_policy]
    assert missing == []


def test_the_freshness_daemon_calls_stale_sources_warning_then_failing(tmp_path):
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time, instance_for_test
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.freshness import FreshnessDaemon

    (tmp_path / "raw_defs.py").write_text(CODE)
    origin = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=str(tmp_path / "raw_defs.py"),
                                                              attribute="defs", working_directory=str(ROOT)),
                                         location_name="command_center")
    landed = datetime.now(UTC)
    seen = {}
    with instance_for_test() as instance, \
            create_test_daemon_workspace_context(InProcessWorkspaceLoadTarget([origin]), instance) as workspace:
        with freeze_time(landed):
            for key in (HEALTH, PULLS, WEATHER):
                instance.report_runless_asset_event(AssetMaterialization(key))
        for after in (timedelta(minutes=4), timedelta(minutes=6), timedelta(minutes=21),
                      timedelta(hours=2, minutes=1), timedelta(hours=2, minutes=16)):
            with freeze_time(landed + after):
                list(FreshnessDaemon().run_iteration(workspace))
            states = instance.get_freshness_state_records([HEALTH, PULLS, WEATHER])
            seen[after] = tuple(states[key].freshness_state.value for key in (HEALTH, PULLS, WEATHER))
    assert seen == {
        timedelta(minutes=4): ("PASS", "PASS", "PASS"),
        timedelta(minutes=6): ("FAIL", "WARN", "PASS"),
        timedelta(minutes=21): ("FAIL", "FAIL", "PASS"),
        timedelta(hours=2, minutes=1): ("FAIL", "FAIL", "WARN"),
        timedelta(hours=2, minutes=16): ("FAIL", "FAIL", "FAIL"),
    }
