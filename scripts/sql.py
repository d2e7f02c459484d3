"""`make sql`: the DuckDB shell (PyPI `duckdb-cli`, the release of the `duckdb` library) on the
analysts' catalog file (resources/storage/catalog.py), read-only.

    make sql                                   # DuckDB's own shell: `.tables`, `.quit`, history, completion
    make sql SQL_ARGS='-c "from tier_partitions"'
    make sql SQL_ARGS=--questions              # run the README's five example questions
    make sql SQL_ARGS='-csv -c "from fct_workflows"'   # other options go to the shell

The catalog file (`$CC_DATA_DIR/catalog.duckdb`, `CC_CATALOG_PATH`) is written after every build;
`make sql` rewrites it first when it is missing or the lake or the serving snapshot changed since
(under a temporary name, renamed over the old one), then opens it with `duckdb -readonly`. It never
opens the warehouse file dbt writes, so it works while a dbt build is running.

With the cold and archive tiers on S3 (`CC_LAKE_URL=s3://...`) DuckDB cannot read them itself (no
httpfs download): the catalog is then built in memory through pyarrow and handed to the shell as an
init file, with the computed tables as small Parquet files beside it, in a private temporary folder
removed when the shell ends.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")

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


def duckdb_cli() -> str:
    """The `duckdb` executable installed beside this Python (duckdb-cli), else one on PATH."""
    beside = Path(sys.executable).parent / "duckdb"
    found = str(beside) if beside.exists() else shutil.which("duckdb")
    if not found:
        raise SystemExit("the DuckDB shell is not installed: run `make install` (it comes from duckdb-cli)")
    return found


def has_data(settings) -> bool:
    """Anything to query: a serving snapshot, a lake file, or a Postgres warehouse."""
    from resources.storage.serving import snapshot_path

    return (settings.warehouse == "postgres" or snapshot_path(settings).exists()
            or any(settings.lake_dir.glob("**/*.parquet")))


def write_init(settings, folder: Path) -> Path:
    """The catalog as a shell init file in `folder`: attachments, then every view; relations that
    live only in Python (pyarrow tables and datasets) become Parquet files beside it."""
    from resources.storage.catalog import open_catalog, pg_conninfo, quote

    con = open_catalog(settings)
    lines = ["-- Written by `make sql` (scripts/sql.py) from resources/storage/catalog.py; removed when the shell ends."]
    for (path,) in con.execute("select install_path from duckdb_extensions() "
                               "where loaded and install_path like '%postgres%'").fetchall():
        lines.append(f"load {quote(path)};")
    for name, path, kind in con.execute("select database_name, path, type from duckdb_databases() "
                                        "where not internal and database_name not in ('memory', 'temp')").fetchall():
        target = pg_conninfo(settings) if kind == "postgres" else path
        lines.append(f"attach {quote(target)} as {name} (type {kind}, read_only);")
    views = con.execute("select view_name, sql from duckdb_views() where not internal "
                        "order by not temporary, view_name").fetchall()
    for name, sql in views:
        if sql:
            lines.append(sql.replace("CREATE TEMP VIEW", "CREATE VIEW", 1))
            continue
        target = folder / f"{name}.parquet"
        if con.execute(f'select count(*) from (describe "{name}")').fetchone()[0] == 0:
            lines.append(f'CREATE VIEW "{name}" AS SELECT NULL AS "empty" WHERE false;')
            continue
        con.execute(f'copy (select * from "{name}") to {quote(str(target))} (format parquet)')
        lines.append(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({quote(str(target))});')
    con.close()
    init = folder / "catalog.sql"
    init.write_text("\n".join(lines) + "\n")
    return init


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    # 0700 (mkdtemp): the init file may hold the Postgres password of CC_PG_URL.
    folder = Path(tempfile.mkdtemp(prefix="cc-sql-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_shell(cmd: list[str], one_line_errors: bool) -> int:
    """Run the shell in the foreground; a Ctrl-C belongs to it (it cancels a query), not to us."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if not one_line_errors:
            return subprocess.run(cmd).returncode
        # DuckDB follows its message with the statement and a caret; the first line says it.
        done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
        message = next((line for line in ANSI.sub("", done.stderr).splitlines() if line.strip()), "")
        if message:
            print(message, file=sys.stderr)
        return done.returncode
    finally:
        signal.signal(signal.SIGINT, previous)


def _question(n: int, question: str, sql: str) -> str:
    """The shell script lines that print a question and its SQL, then run it."""
    shown = ["", f"{n}. {question}", *sql.splitlines()]
    return "".join('.print "' + line.replace('"', '\\"') + '"\n' for line in shown) + sql + ";\n"


# The shell's own options that take a value (`-separator ';'`).
_SHELL_VALUED = {"-separator", "-newline", "-nullvalue", "-storage-version"}


def _split_shell_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our options, and the shell's (`-csv`, `-json`, `-markdown`, `-separator X`, ...) passed on:
    argparse alone would read `-csv` as `-c sv`."""
    ours: list[str] = []
    shell: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token.startswith("-") and not token.startswith("--") and len(token) > 2:
            shell.append(token)
            if token in _SHELL_VALUED:
                shell.append(next(tokens, ""))
        else:
            ours.append(token)
    return ours, shell


def catalog_file(settings) -> Path:
    """The catalog file, rewritten first if missing or stale. When it cannot be rewritten, one line
    says why, and the last one written (if any) opens instead."""
    import duckdb

    from resources.storage.catalog import ensure_catalog

    path = settings.catalog_file
    try:
        return ensure_catalog(settings)[0]
    except (duckdb.Error, OSError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not path.exists():
            raise SystemExit(f"could not write the catalog {path}: {reason}") from None
        print(f"could not refresh the catalog {path} ({reason}): opening the last one written", file=sys.stderr)
        return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--command", help="run one statement and exit")
    parser.add_argument("--questions", action="store_true", help="run the README's five example questions")
    ours, shell_options = _split_shell_options(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(ours)

    from resources.settings import Settings
    from resources.storage.tiers import TierStore

    settings = Settings.from_env()
    if settings.warehouse == "postgres":
        from scripts.preflight import check_postgres

        check_postgres(settings.pg_url, "CC_PG_URL", "start it or unset CC_WAREHOUSE")
    if not has_data(settings):
        raise SystemExit(f"no data in {settings.data_dir}: run `make demo` first")
    shell = [duckdb_cli(), *shell_options]
    if not TierStore.from_settings(settings).is_local:
        return in_memory(settings, shell, args)
    shell += ["-readonly", str(catalog_file(settings))]
    if args.command:
        return run_shell([*shell, "-c", args.command], one_line_errors=True)
    if args.questions:
        with private_folder() as folder:
            script = folder / "questions.sql"
            script.write_text(questions_script())
            return run_shell([*shell, "-bail", "-f", str(script)], one_line_errors=True)
    return run_shell(shell, one_line_errors=False)


def questions_script() -> str:
    return "".join(_question(n, question, sql) for n, (question, sql) in enumerate(QUESTIONS, 1))


def in_memory(settings, shell: list[str], args: argparse.Namespace) -> int:
    """The S3 case: the in-memory catalog (pyarrow reads the tiers) handed to the shell as an init file."""
    with private_folder() as folder:
        init = write_init(settings, folder)
        if args.command:
            return run_shell([*shell, "-cmd", f".read {init}", "-c", args.command], one_line_errors=True)
        if args.questions:
            script = folder / "questions.sql"
            script.write_text(questions_script())
            return run_shell([*shell, "-bail", "-cmd", f".read {init}", "-f", str(script)], one_line_errors=True)
        return run_shell([*shell, "-init", str(init)], one_line_errors=False)


if __name__ == "__main__":
    sys.exit(main())
