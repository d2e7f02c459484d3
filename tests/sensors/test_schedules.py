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
