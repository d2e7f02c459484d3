"""Partition definitions shared by the raw, normalized and tiered assets, and a run's window of days."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from dagster import (
    BackfillPolicy,
    DailyPartitionsDefinition,
    HourlyPartitionsDefinition,
    MonthlyPartitionsDefinition,
)

# The widest start, for assets run outside the definitions (tests materialize them directly).
# The definitions start every partitioned asset at the first day the data holds instead
# (cc_assets/catalog.py, CC_PARTITIONS_START), so the catalog shows no day that was never meant to exist.
EARLIEST = "2026-01-01"

# end_offset=1 includes today's (still filling) partition: the live day is re-run by the
# schedule and replaced atomically each time.
daily_partitions = DailyPartitionsDefinition(start_date=EARLIEST, end_offset=1)

# A backfill of many days runs as one run that pages each source once for the whole window.
single_run_backfill = BackfillPolicy.single_run()

# The storage tiers (cc_assets/tiers.py): hours for the hot tier, days for cold and warm (the
# daily partitions above), months for the archive. Both include the current period, which
# is re-run (and replaced) as it fills.
hourly_partitions = HourlyPartitionsDefinition(start_date=f"{EARLIEST}-00:00", end_offset=1)
monthly_partitions = MonthlyPartitionsDefinition(start_date=EARLIEST, end_offset=1)


@dataclass(frozen=True)
class Window:
    days: list[date]
    # Incremental runs: per cursor scope, the time this run's fetch starts from (inside the window).
    since: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.days[0], datetime.min.time())

    @property
    def end(self) -> datetime:
        return datetime.combine(self.days[-1] + timedelta(days=1), datetime.min.time())

    def start_for(self, scope: str) -> datetime:
        """Where to fetch `scope` from: its cursor when the run is incremental, else the window start."""
        return self.since.get(scope, self.start)
