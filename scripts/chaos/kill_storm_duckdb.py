"""`kill -9` storm of the sidecar, counted end to end on the DuckDB warehouse (see `kill_storm`)."""

from scripts.chaos import Scenario
from scripts.chaos.kill_storm import run

SCENARIO = Scenario("kill_storm_duckdb", lambda ctx: run(ctx, "duckdb"), seconds=75)
