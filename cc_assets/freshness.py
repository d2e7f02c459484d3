"""How fresh each source's raw assets should be, as Dagster freshness policies: the UI shows an
asset Passing, Warning or Failing its policy (the asset's page, the catalog's health), evaluated
every 30 s by the Dagster daemon's freshness loop that `make ui` runs.

Freshness policies (Dagster 1.12+) supersede freshness checks: no check runs inside the sources'
jobs, so a stale source never marks a run failed (the demo's runs included). The sidecar's
`stale_data` rule raises the alert a person gets; these windows follow the same seeds' cadences:
- real-time sources, landed on every tick of a 15 s to 1 min trigger: failing past 5 minutes;
- sources landed when their change probe moves (GitHub, Linear, Charlie activity, cron, logs,
  webhook deliveries): a quiet source is not behind, so past 5 minutes they only warn, and fail
  past 20 minutes, when even `sources_schedule`'s 15-minute re-landing of today has not run;
- weather, polled every 2 hours: warning past 2 hours, failing past its poll plus 15 minutes.

The dbt marts (and the serving snapshot copied from them) are rebuilt after every ingest run,
at most once per 5 minutes (`transform_after_ingest_sensor`), and the real-time sources land every
30 s to a minute: a mart is behind past 10 minutes (two windows) and failing past 20, when even
the 15-minute re-landing of today and its build have not reached it.
"""

from datetime import timedelta

from dagster import FreshnessPolicy

REALTIME = FreshnessPolicy.time_window(fail_window=timedelta(minutes=5))
ON_CHANGE = FreshnessPolicy.time_window(warn_window=timedelta(minutes=5), fail_window=timedelta(minutes=20))
WEATHER = FreshnessPolicy.time_window(warn_window=timedelta(hours=2), fail_window=timedelta(hours=2, minutes=15))
MARTS = FreshnessPolicy.time_window(warn_window=timedelta(minutes=10), fail_window=timedelta(minutes=20))

# By source, and by (source, entity) where one source's entities land on different triggers.
POLICIES: dict[str | tuple[str, str], FreshnessPolicy] = {
    "github": ON_CHANGE,
    "linear": ON_CHANGE,
    "charlie": REALTIME,  # the registry and health, every 30 s
    ("charlie", "activity"): ON_CHANGE,
    "openclaw": REALTIME,
    "cron": ON_CHANGE,
    "weather": WEATHER,
    "system": REALTIME,  # the agents sample every 30 s
    "logs": ON_CHANGE,
    "postgres_cdc": REALTIME,
    "webhooks": ON_CHANGE,
}


def freshness_policy(source: str, entity: str) -> FreshnessPolicy:
    """The policy of `raw/<source>/<entity>` (a source missing here fails at load, not silently)."""
    return POLICIES.get((source, entity)) or POLICIES[source]
