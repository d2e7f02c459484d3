"""`kill -9` storm of the sidecar, counted end to end on a throwaway Postgres warehouse (see `kill_storm`)."""

from scripts.chaos import Scenario
from scripts.chaos.kill_storm import run

SCENARIO = Scenario("kill_storm_postgres", lambda ctx: run(ctx, "postgres"), seconds=90, needs=("postgres",))
