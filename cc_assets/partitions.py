"""Partition definitions shared by the raw, normalized and (later) tiered assets."""

from dagster import BackfillPolicy, DailyPartitionsDefinition

# end_offset=1 includes today's (still filling) partition: the live day is re-run by the
# schedule and replaced atomically each time.
daily_partitions = DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)

# A backfill of many days runs as one run that pages each source once for the whole window.
single_run_backfill = BackfillPolicy.single_run()
