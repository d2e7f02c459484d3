"""`make sql`: DuckDB on a catalog of every tier (resources/storage/catalog.py), for analysts.

    make sql                                   # interactive: end a statement with `;`, `.tables`, `.quit`
    make sql SQL_ARGS='-c "from tier_partitions"'
    make sql SQL_ARGS=--questions              # run the README's five example questions

It never opens the warehouse file dbt writes (it reads the serving snapshot, the lake and, on
Postgres, the warehouse read-only), so it works while a dbt build is running.
"""

from __future__ import annotations

import argparse
import sys

# The README's five example questions (its "Analysts: make sql" section shows the same SQL).
QUESTIONS: list[tuple[str, str]] = [
    ("Which workflows are still active, newest activity first, and who is on them?",
     "select workflow_id, workflow_name, assignee_name, event_count, last_event_at\n"
     "from fct_workflows where status = 'active'\n"
     "order by last_event_at desc limit 10"),
    ("How many events did each source produce per day, over all of history (cold + archive)?",
     "select cast(bucket_start_at as date) as day, source, sum(event_count) as events\n"
     "from event_volume_history group by all order by day, source"),
    ("Which Charlie instances failed the most tasks, per month?",
     "select date_trunc('month', event_at) as month, actor_instance, count(*) as failed_tasks\n"
     "from events_history where event_type = 'charlie.task.failed'\n"
     "group by all order by month, failed_tasks desc"),
    ("Which pull requests took longest from opened to merged?",
     "select target_id as pull_request,\n"
     "       min(event_at) filter (where event_type = 'github.pr.opened') as opened_at,\n"
     "       max(event_at) filter (where event_type = 'github.pr.merged') as merged_at,\n"
     "       merged_at - opened_at as time_to_merge\n"
     "from events_history where event_type in ('github.pr.opened', 'github.pr.merged')\n"
     "group by target_id having opened_at is not null and merged_at is not null\n"
     "order by time_to_merge desc limit 10"),
    ("What does each tier hold: partitions, rows, bytes, bytes per million events?",
     "select tier, count(*) as partitions, sum(rows) as rows, sum(bytes) as bytes,\n"
     "       round(sum(bytes) * 1e6 / nullif(sum(rows), 0)) as bytes_per_million_events\n"
     "from tier_partitions group by tier order by tier"),
]


def repl(con) -> None:
    print("Command Center catalog (DuckDB). End statements with ';'. .tables lists relations, .quit leaves.")
    buffer: list[str] = []
    while True:
        try:
            line = input("cc> " if not buffer else "... ")
        except EOFError:
            print()
            return
        stripped = line.strip()
        if not buffer and stripped in (".quit", ".exit", "\\q"):
            return
        if not buffer and stripped == ".tables":
            con.sql("select table_catalog, table_schema, table_name, table_type from information_schema.tables "
                    "order by all").show(max_rows=200)
            continue
        buffer.append(line)
        if stripped.endswith(";"):
            statement = "\n".join(buffer)
            buffer = []
            try:
                relation = con.sql(statement)
                if relation is not None:
                    relation.show(max_rows=100)
            except Exception as exc:  # noqa: BLE001 - an analyst's typo must not end the session
                print(f"error: {exc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--command", help="run one statement and exit")
    parser.add_argument("--questions", action="store_true", help="run the README's five example questions")
    args = parser.parse_args(argv)

    from resources.settings import Settings
    from resources.storage.catalog import open_catalog

    con = open_catalog(Settings.from_env())
    if args.questions:
        for n, (question, query) in enumerate(QUESTIONS, 1):
            print(f"\n{n}. {question}\n{query}")
            con.sql(query).show(max_rows=20)
        return 0
    if args.command:
        relation = con.sql(args.command)
        if relation is not None:
            relation.show(max_rows=1000)
        return 0
    repl(con)
    return 0


if __name__ == "__main__":
    sys.exit(main())
