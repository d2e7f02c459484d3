"""The weather-arbitrage schedule: every 2 hours."""

from dagster import RunRequest, schedule

from sensors.triggers import source_job, today

weather_job = source_job("weather_job", ["raw", "weather"], description="Land weather-arbitrage opportunities.")


@schedule(job=weather_job, cron_schedule="0 */2 * * *", execution_timezone="UTC",
          description="Every 2 hours: weather-arbitrage opportunities.")
def weather_schedule(context):
    return RunRequest(partition_key=today())


JOBS = [weather_job]
SENSORS = []
SCHEDULES = [weather_schedule]
