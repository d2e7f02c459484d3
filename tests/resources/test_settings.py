"""The settings class: typed CC_* variables, one-line errors, unknown names, .env, and the README's
configuration tables checked against the class."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from resources import settings_env
from resources.settings import DEFAULT_DATA_DIR, PROJECT_ROOT, Settings, SettingsError, variable, variables

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_and_derived_values() -> None:
    s = Settings.from_env({})
    assert s.data_dir == DEFAULT_DATA_DIR and s.warehouse == "duckdb" and s.ws_queue_max == 1000
    assert s.duckdb_path == DEFAULT_DATA_DIR / "warehouse.duckdb"
    assert s.github_base_url == "http://127.0.0.1:8765/github"
    assert s.pg.host == "127.0.0.1" and s.pg.port == 5432 and s.pg.dbname == "postgres"


def test_values_are_parsed_as_before() -> None:
    s = Settings.from_env({"CC_DATA_DIR": "elsewhere", "CC_GITHUB_REPOS": "acme/api, acme/web,",
                           "CC_WAREHOUSE": "Postgres", "CC_SANDBOX_URL": "http://h:1/", "CC_WS_QUEUE_MAX": "7",
                           "CC_DAGSTER_HOME_DIR": "/tmp/dh", "CC_GITHUB_TOKEN": "", "CC_HTTP_BACKOFF_S": "0.25",
                           "CC_PG_URL": "postgresql://u:p%40ss@db:6543/wh"})
    assert s.data_dir == PROJECT_ROOT / "elsewhere"  # relative: the project's folder, wherever we run
    assert s.github_repos == ("acme/api", "acme/web")
    assert s.warehouse == "postgres" and s.sandbox_url == "http://h:1" and s.ws_queue_max == 7
    assert s.dagster_home == Path("/tmp/dh") and s.github_token is None and s.http_backoff_s == 0.25
    assert (s.pg.host, s.pg.port, s.pg.user, s.pg.password, s.pg.dbname) == ("db", 6543, "u", "p@ss", "wh")
    assert s.dbt_env()["CC_DBT_PG_PORT"] == "6543"


def test_an_explicit_mapping_ignores_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CC_WS_QUEUE_MAX", "3")
    assert Settings.from_env({}).ws_queue_max == 1000
    assert Settings.from_env().ws_queue_max == 3


def test_secrets_stay_out_of_repr() -> None:
    s = Settings.from_env({"CC_JWT_SECRET": "hunter2", "CC_GITHUB_TOKEN": "ghp_x", "CC_REDIS_URL": "redis://:pw@h"})
    assert "hunter2" not in repr(s) and "ghp_x" not in repr(s) and ":pw@" not in repr(s)
    assert s.jwt_secret == "hunter2"


@pytest.mark.parametrize(("env", "message"), [
    ({"CC_WS_QUEUE_MAX": "1k"}, "CC_WS_QUEUE_MAX: expected an integer, got '1k'"),
    ({"CC_HTTP_TIMEOUT_S": "soon"}, "CC_HTTP_TIMEOUT_S: expected a number, got 'soon'"),
    ({"CC_WAREHOUSE": "mysql"}, "CC_WAREHOUSE: expected duckdb or postgres, got 'mysql'"),
    ({"CC_PG_URL": "mysql://db/x"}, "CC_PG_URL: expected a postgresql://user@host:port/dbname URL, got 'mysql://db/x'"),
    ({"CC_UI_PORT": "70000"}, "CC_UI_PORT: expected a value less than or equal to 65535, got '70000'"),
    ({"CC_DAGSTER_PG_URL": "sqlite:///x"}, "CC_DAGSTER_PG_URL: expected a postgresql://user@host:port/dbname URL, "
                                           "got 'sqlite:///x'"),
])
def test_a_bad_value_is_one_line_naming_the_variable(env, message) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert str(raised.value) == message


def test_unknown_variables_are_reported_with_the_closest_name(caplog) -> None:
    settings_env._warned.discard("CC_WAREHOUSES")
    with caplog.at_level(logging.WARNING, logger="resources.settings_env"):
        s = Settings.from_env({"CC_WAREHOUSES": "postgres", "CC_DBT_PG_HOST": "h", "CC_DATA_DIR": "/tmp/x"})
    assert s.warehouse == "duckdb"
    assert [r.getMessage() for r in caplog.records] == [
        "unknown variable CC_WAREHOUSES (did you mean CC_WAREHOUSE?): ignored"]


def test_a_dot_env_file_is_read_and_the_environment_wins(tmp_path, monkeypatch) -> None:
    for name in [n for n in __import__("os").environ if n.startswith("CC_")]:
        monkeypatch.delenv(name)
    (tmp_path / ".env").write_text("CC_WS_QUEUE_MAX=42\nCC_WAREHOUSE=postgres\n# a comment\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CC_WAREHOUSE", "duckdb")
    s = Settings.from_env()
    assert s.ws_queue_max == 42 and s.warehouse == "duckdb"


def test_dot_env_is_git_ignored() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# The README's configuration tables: rows `| `CC_A`, `CC_B` | default(s) | meaning |`.
ROW = re.compile(r"^\| (`CC_[^|]*) \| ([^|]*) \|")


def _documented() -> dict[str, str | None]:
    """Each documented variable → its documented default (None when one cell covers several)."""
    found: dict[str, str | None] = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = ROW.match(line)
        if not match:
            continue
        names = re.findall(r"`(CC_[A-Z0-9_]+)`", match.group(1))
        defaults = [d.strip().strip("`") for d in match.group(2).split(", ")]
        assert len(defaults) in (1, len(names)), f"one default per variable, or one for all: {line}"
        for i, name in enumerate(names):
            found[name] = defaults[i] if len(defaults) == len(names) else defaults[0]
    return found


def test_the_readme_documents_every_setting_with_its_default() -> None:
    documented = _documented()
    fields = variables()
    assert sorted(set(fields) - set(documented)) == [], "settings missing from the README's tables"
    assert sorted(set(documented) - set(fields)) == [], "README variables the settings class does not have"
    for name, field in fields.items():
        default = Settings.model_fields[field].default
        if isinstance(default, bool) or not isinstance(default, int | float | str):
            continue  # unset (–), a list or a path: described in words
        shown = documented[name]
        if isinstance(default, str):
            assert shown == default, f"{name}: README says {shown!r}, the class {default!r}"
        else:
            assert float(shown.replace(",", "")) == default, f"{name}: README says {shown!r}, the class {default!r}"


def test_variable_names_follow_the_fields() -> None:
    assert variable("ws_queue_max") == "CC_WS_QUEUE_MAX"
    assert variable("dagster_home") == "CC_DAGSTER_HOME_DIR"


@pytest.mark.parametrize("module", ["scripts.demo", "scripts.ui", "scripts.sidecar", "scripts.sql"])
def test_commands_print_a_bad_value_in_one_line(module, tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "CC_WS_QUEUE_MAX": "1k", "CC_DATA_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "scripts.run", module], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "CC_WS_QUEUE_MAX: expected an integer, got '1k'\n")


def test_commands_read_a_dot_env_in_their_directory(tmp_path) -> None:
    (tmp_path / ".env").write_text("CC_WS_QUEUE_MAX=1k\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "CC_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "scripts.run", "scripts.sql"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (2, "CC_WS_QUEUE_MAX: expected an integer, got '1k'\n")
