"""`schemathesis`: every operation of /openapi.json fuzzed against a real sidecar over a built
warehouse, with a token that may do everything, and every check schemathesis has (status codes,
response schemas and headers, invalid input refused, valid input accepted, `Allow` on a 405,
stateful links). A row's `wrongly accepted` counts the mismatches between the document and what
the API did; `5xx` the server errors among the answers.

The run is the schemathesis CLI in a subprocess (its hooks: `scripts/chaos/schemathesis_hooks.py`),
reading its JSON report for the mismatches and its NDJSON one for every request and answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scripts.chaos import Context, Row, Scenario
from scripts.chaos.harness import ROOT, SECRETS, Sidecar
from streaming.auth import issue_token

HOOKS = "scripts.chaos.schemathesis_hooks"


def full_token(sub: str = "schemathesis") -> str:
    """A token for every room and route: no `rooms` claim (reads everything), and the scopes a
    scoped deployment names, commands included."""
    scopes = ["read", "write", "dashboards", "commands"]
    return issue_token(SECRETS["CC_JWT_SECRET"], sub, 3600, None, scope=" ".join(scopes), scopes=scopes)


@dataclass
class SchemathesisRun:
    exit_code: int
    generated: int = 0  # test cases
    requests: int = 0
    server_errors: int = 0  # answers with a 5xx status
    failures: list[dict] = field(default_factory=list)  # {code, title, count, operations}
    output: str = ""

    @property
    def mismatches(self) -> list[dict]:
        return [f for f in self.failures if f["code"] != "ST101"]

    def summary(self) -> str:
        return "; ".join(f"{f['code']} {f['title']} x{f['count']}: {', '.join(f['operations'])}"
                         for f in self.failures) or "none"


def run_schemathesis(sidecar: Sidecar, workdir: Path, seed: int = 1, max_examples: int = 30,
                     max_time_s: float | None = None, token: str | None = None) -> SchemathesisRun:
    """`schemathesis run` over `sidecar`'s /openapi.json with every check, fixed `seed`; bounded
    by `max_examples` per operation (and `max_time_s`, when given, which it then fills)."""
    reports = workdir / "schemathesis-report"
    reports.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"  # nothing kept between runs, nothing written into the repository
    config.write_text("[cache]\nenabled = false\n")
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{sidecar.url}/openapi.json",
           "-H", f"Authorization: Bearer {token or full_token()}", "--checks", "all", "--seed", str(seed),
           "--max-examples", str(max_examples), "--workers", "1", "--request-timeout", "30",
           "--report", "json,ndjson", "--report-dir", str(reports), "--generation-database", "none"]
    if max_time_s is not None:
        cmd += ["--max-time", str(max(1, int(max_time_s)))]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "NO_COLOR": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    run = SchemathesisRun(done.returncode, output=done.stdout + done.stderr)
    report = next(reports.glob("json-*.json"), None)
    if done.returncode not in (0, 1) or report is None:
        raise RuntimeError(f"schemathesis did not run (exit {done.returncode}):\n{run.output[-3000:]}")
    summary = json.loads(report.read_text())
    run.generated = summary["test_cases"]["generated"]
    run.failures = [{k: f[k] for k in ("code", "title", "count", "operations")} for f in summary["failures"]]
    for errored in summary.get("errors", []):  # an operation schemathesis could not test is a mismatch too
        run.failures.append({"code": "error", "title": str(errored)[:200], "count": 1, "operations": []})
    for line in next(reports.glob("ndjson-*.ndjson")).read_text().splitlines():
        if '"ScenarioFinished"' not in line:
            continue
        for interaction in json.loads(line)["ScenarioFinished"]["recorder"].get("interactions", {}).values():
            response = interaction.get("response")
            run.requests += 1
            if response is not None and response["status_code"] >= 500:
                run.server_errors += 1
    return run


def run(ctx: Context) -> list[Row]:
    import time

    from scripts.chaos.built import built_sidecar

    started = time.monotonic()
    # One token, hundreds of requests a minute: over any real limit, and 429s are not what this finds.
    with built_sidecar(ctx.workdir, env={"CC_RATE_LIMIT_READ": "unlimited", "CC_RATE_LIMIT_COMMAND": "unlimited"}) as sidecar:
        # The build takes 30 s to a minute and more on a busy host: the fuzzing gets at least half the budget.
        left = max(ctx.seconds - (time.monotonic() - started), ctx.seconds / 2)
        result = run_schemathesis(sidecar, ctx.workdir, seed=ctx.seed, max_examples=1000, max_time_s=left)
    return [Row("schemathesis", attempts=result.requests, errors_5xx=result.server_errors,
                wrongly_accepted=sum(f["count"] for f in result.mismatches),
                notes=f"{result.generated:,} cases; mismatches: {result.summary()}"[:300])]


SCENARIO = Scenario("schemathesis", run, seconds=90)
