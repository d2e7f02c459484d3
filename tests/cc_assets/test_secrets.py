"""Tokens never appear in logs, in Dagster's event log and UI metadata, or in the data folder.

The runs send real tokens (the sandbox accepts any) through retries, a source that is down and a
malformed page, the paths where a careless client prints its request.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from dagster import DagsterInstance

from cc_assets.definitions import defs
from resources.platform import PlatformResource
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
TOKENS = {
    "CC_GITHUB_TOKEN": "ghp_SeCrEt0GitHub0Token0Do0Not0Print",
    "CC_LINEAR_API_KEY": "lin_api_SeCrEt0Linear0Key0Do0Not0Print",
    "CC_CHARLIE_API_TOKEN": "charlie0SeCrEt0Token",
    "CC_OPENCLAW_API_TOKEN": "openclaw0SeCrEt0Token",
    "CC_CRON_API_TOKEN": "cron0SeCrEt0Token",
    "CC_WEATHER_API_TOKEN": "weather0SeCrEt0Token",
}
JOBS = ["github_job", "linear_job", "charlie_health_job", "charlie_activity_job", "openclaw_job", "cron_events_job",
        "weather_job"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=300, days=1, end=END) as handle:
        yield handle


def test_no_token_is_logged_shown_or_stored(sandbox, tmp_path, monkeypatch, caplog, capfd):
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    # With a token set a client talks to the real API unless told otherwise: point them at the sandbox.
    for name, path in [("GITHUB_API_URL", "github"), ("LINEAR_API_URL", "linear/graphql"),
                       ("CHARLIE_API_URL", "charlie"), ("OPENCLAW_API_URL", "openclaw"), ("CRON_API_URL", "cron"),
                       ("WEATHER_API_URL", "weather")]:
        monkeypatch.setenv(f"CC_{name}", f"{sandbox.url}/{path}")
    monkeypatch.setenv("CC_HTTP_BACKOFF_S", "0.01")
    platform = PlatformResource(data_dir=str(tmp_path / "data"))
    settings = platform.settings()
    assert TOKENS["CC_GITHUB_TOKEN"] in platform.github().http.session.headers["Authorization"]
    assert TOKENS["CC_LINEAR_API_KEY"] in platform.linear().http.session.headers["Authorization"]
    assert TOKENS["CC_GITHUB_TOKEN"] not in repr(settings)

    sandbox.set_faults([
        {"match": "/github/repos/acme/api/pulls", "status": 503, "times": 2},  # retried, logged (REST)
        {"match": "/github/graphql#PullRequests", "status": 503, "times": 2},  # the same, GraphQL
        {"match": "/linear", "kind": "malformed_json", "times": 1},  # a dead letter with the page
        {"match": "/weather", "kind": "down"},  # fails its asset with the client's message
    ])
    day = END.date().isoformat()
    texts = []
    with DagsterInstance.ephemeral() as instance:
        for job in JOBS:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, partition_key=day, resources={"platform": platform}, raise_on_error=False)
            for record in instance.all_logs(result.run_id):
                texts.append(repr(record))
            run = instance.get_run_by_id(result.run_id)
            texts.append(repr(run.run_config))
            texts.append(repr(run.tags))
    sandbox.clear_faults()
    failures = [t for t in texts if "weather is unavailable" in t]
    assert failures, "the weather run should have failed with the client's message"
    assert any("retry" in t for t in [caplog.text, *texts]), "the GitHub 503s should have been retried and logged"

    out, err = capfd.readouterr()
    stored = "".join(p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / "data").rglob("*")
                     if p.is_file() and p.suffix not in (".parquet",))
    parquet = b"".join(p.read_bytes() for p in (tmp_path / "data").rglob("*.parquet"))
    for name, token in TOKENS.items():
        for where, text in [("Dagster's event log and runs", "\n".join(texts)), ("Python logging", caplog.text),
                            ("stdout", out), ("stderr", err), ("the data folder", stored)]:
            assert token not in text, f"{name} appears in {where}"
        assert token.encode() not in parquet, f"{name} appears in a Parquet file"
