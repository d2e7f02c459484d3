"""The schedule targets today's partition; the sensor asks for a dbt build after each ingest."""

from datetime import UTC, datetime

from dagster import DagsterEvent, DagsterInstance, build_run_status_sensor_context, build_schedule_context

from cc_assets.definitions import defs
from sensors.schedules import sources_schedule, transform_after_ingest_sensor


def test_sources_schedule_relands_the_current_day():
    context = build_schedule_context(scheduled_execution_time=datetime(2026, 11, 23, 14, 45, tzinfo=UTC))
    request = sources_schedule(context)
    assert request.partition_key == "2026-11-23"
    assert request.run_key == "2026-11-23-1445"


RUN_ID = "5f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def test_successful_ingest_triggers_one_transform_run():
    instance = DagsterInstance.ephemeral()
    job = defs.resolve_job_def("ingest_job")
    run = instance.create_run_for_job(job_def=job, run_id=RUN_ID)
    context = build_run_status_sensor_context(sensor_name="transform_after_ingest_sensor", dagster_instance=instance,
                                              dagster_run=run,
                                              dagster_event=DagsterEvent("PIPELINE_SUCCESS", "ingest_job"))
    request = transform_after_ingest_sensor(context)
    assert request.run_key == f"after-{RUN_ID}"
    assert transform_after_ingest_sensor.job_name == "transform_job"


def _run(instance, job_name: str, status: str, started: float, ended: float | None = None) -> str:
    """A run of `job_name` that started (and ended) at the given times, as the daemon records them."""
    from dagster import DagsterEventType

    run = instance.create_run_for_job(job_def=defs.resolve_job_def(job_name))
    storage = instance.run_storage
    storage.handle_run_event(run.run_id, DagsterEvent(DagsterEventType.RUN_START.value, job_name),
                             datetime.fromtimestamp(started, UTC))
    if status == "success":
        storage.handle_run_event(run.run_id, DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name),
                                 datetime.fromtimestamp(ended, UTC))
    return run.run_id


T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC).timestamp()


def test_a_source_landing_after_its_windows_build_started_is_built_the_window_after():
    from sensors.schedules import catch_up

    instance = DagsterInstance.ephemeral()
    _run(instance, "github_job", "success", T0, T0 + 20)
    _run(instance, "transform_job", "success", T0 + 21, T0 + 60)  # the window's build
    late = _run(instance, "linear_job", "success", T0 + 30, T0 + 90)  # landed while it ran
    waiting = catch_up(instance, now=T0 + 120)
    assert "building it in" in waiting.skip_message, "within the window the build waits"
    request = catch_up(instance, now=T0 + 21 + 300)
    assert request.run_key == f"catch-up-{late}", "the late landing must get a build once the window allows"


def test_no_catch_up_when_the_last_build_started_after_the_landing_or_one_is_queued():
    from sensors.schedules import catch_up

    instance = DagsterInstance.ephemeral()
    assert "nothing landed" in catch_up(instance, now=T0).skip_message
    _run(instance, "github_job", "success", T0, T0 + 20)
    _run(instance, "transform_job", "success", T0 + 25, T0 + 60)
    assert "in the build since" in catch_up(instance, now=T0 + 1000).skip_message
    _run(instance, "cron_events_job", "success", T0 + 70, T0 + 80)
    _run(instance, "transform_job", "started", T0 + 81)
    assert "is started" in catch_up(instance, now=T0 + 1000).skip_message
