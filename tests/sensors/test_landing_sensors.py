"""The pushed sources' sensors look at every writer's landing files: sidecar workers sharing a data
dir each append to their own (`date=D.<worker>.jsonl`)."""

from datetime import UTC, datetime

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context

from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from resources.platform import PlatformResource
from resources.storage.landing import LandingLog
from sensors.system_metrics import system_metrics_sensor
from sensors.webhooks import webhooks_sensor


def tick(sensor, platform, cursor=None):
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), cursor=cursor,
                                   resources={"platform": platform})
    return sensor(context), context.cursor


def test_a_day_whose_second_workers_file_grew_is_landed_again(tmp_path):
    platform = PlatformResource(data_dir=str(tmp_path))
    now = datetime.now(UTC).replace(tzinfo=None)
    for sensor, stream in ((webhooks_sensor, "webhooks"), (system_metrics_sensor, METRICS_STREAM)):
        LandingLog(tmp_path / "landing", "w1").append(stream, [{"id": "a"}], now)
        first, cursor = tick(sensor, platform)
        assert isinstance(first if isinstance(first, RunRequest) else first[0], RunRequest)
        assert isinstance(tick(sensor, platform, cursor)[0], SkipReason)
        LandingLog(tmp_path / "landing", "w2").append(stream, [{"id": "b"}], now)
        grown = tick(sensor, platform, cursor)[0]
        requests = grown if isinstance(grown, list) else [grown]
        assert [r.partition_key for r in requests] == [now.date().isoformat()]
