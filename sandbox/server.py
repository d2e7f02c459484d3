"""One HTTP server for the whole sandbox: GitHub under `/github` (GraphQL at `/github/graphql`),
Linear at `/linear/graphql`,
Charlie under `/charlie`, the agent-side sources under `/openclaw`, `/cron` and `/weather`, and the
admin routes under `/_sandbox` (info, truth, truth/agents, faults).

HTTP/1.1 with keep-alive and a Content-Length on every response, so real clients pool connections
as they would against the real services; the one stream (`/cron/v1/stream`, Server-Sent Events)
is sent chunked.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from sandbox import truth as truth_mod
from sandbox.agents import generate_agents
from sandbox.charlie import CharlieApi
from sandbox.cron import CronApi
from sandbox.faults import Faults, records, spoil
from sandbox.generator import generate
from sandbox.github import GitHubApi
from sandbox.github_graphql import GitHubGraphQL
from sandbox.linear import LinearApi
from sandbox.model import AgentWorld, Org, iso, paused_gc
from sandbox.openclaw import OpenClawApi
from sandbox.weather import WeatherApi

JSON = "application/json; charset=utf-8"
SOURCES = ("github", "linear", "charlie", "openclaw", "cron", "weather")
SIMPLE_JSON_SOURCES = ("charlie", "openclaw", "cron", "weather")  # `{"error", "message"}` on failure
LINEAR_REQUESTS, LINEAR_COMPLEXITY = 5000, 3_000_000
AGENTS_TRUTH = "truth_agents.parquet"  # kept apart from truth.parquet until the pipeline ingests these sources
_FAULT_MESSAGES = {
    403: "You have exceeded a secondary rate limit. Please wait a few minutes and try again.",
    429: "Too many requests", 500: "Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
}


class Response(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class Stream(NamedTuple):
    """A chunked response written as it is produced; a None chunk drops the connection there."""

    status: int
    headers: list[tuple[str, str]]
    chunks: Iterator[bytes | None]


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _json(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", JSON), *(headers or [])], _dumps(payload))


class Windows:
    """Per-token usage in fixed hourly windows, like GitHub's primary rate limit."""

    def __init__(self, limit: int, period: int = 3600) -> None:
        self.limit, self.period = limit, period
        self._lock = threading.Lock()
        self._used: dict[str, list[int]] = {}  # token -> [window reset epoch, used]

    def state(self, token: str, spend: int = 0) -> tuple[int, int]:
        """(used, reset) after spending `spend`."""
        now = int(time.time())
        with self._lock:
            window = self._used.get(token)
            if window is None or now >= window[0]:
                window = self._used[token] = [now + self.period, 0]
            window[1] += spend
            return window[1], window[0]


class SandboxApp:
    """Routes a request to an API; applies faults, rate limits and conditional requests."""

    def __init__(
        self, org: Org, truth: truth_mod.Truth, truth_path: Path | None, rate_limit: int = 5000,
        agents: AgentWorld | None = None, agents_truth: truth_mod.Truth | None = None,
    ) -> None:
        self.org, self.truth, self.truth_path = org, truth, truth_path
        self.github, self.linear, self.charlie = GitHubApi(org), LinearApi(org), CharlieApi(org)
        self.agents = agents if agents is not None else generate_agents(org)
        self.agents_truth = agents_truth if agents_truth is not None else truth_mod.build_agents(self.agents, truth)
        self.openclaw, self.cron, self.weather = (
            OpenClawApi(self.agents), CronApi(self.agents), WeatherApi(self.agents))
        self.faults = Faults()
        self.github_limits = Windows(rate_limit)
        # `rate_limit` is both of GitHub's hourly budgets per token: REST requests and GraphQL points
        # (5,000 each for a user on github.com).
        self.github_graphql, self.github_points = GitHubGraphQL(self.github), Windows(rate_limit)
        # Requests GitHub received, by REST route (`reviews`, `check_runs`, ...) or `graphql`: what a
        # client's way of pulling costs in calls, whatever it counts itself.
        self.github_requests: Counter[str] = Counter()
        self.github_refused = 0  # GraphQL queries refused for their point budget
        self.linear_requests, self.linear_complexity = Windows(LINEAR_REQUESTS), Windows(LINEAR_COMPLEXITY)
        self.linear_refused = 0

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> Response | Stream | None:
        """The response, or None to drop the connection unanswered."""
        url = urlsplit(target)
        path, query = url.path, dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            if path.startswith("/_sandbox/"):
                return self._admin(method, path, body)
            source = path.split("/", 2)[1]
            if source not in SOURCES:
                return _json(404, {"message": "Not Found"})
            if source == "github" and path.rstrip("/") == "/github/graphql":
                target = f"{target}#{_operation_name(body)}"  # a fault may name one GraphQL operation
            if fault := self.faults.take(target, late=False):
                if fault.kind == "timeout":
                    time.sleep(fault.delay)  # this request's thread only: the others are served
                return None if fault.kind in ("disconnect", "timeout") else self._fault(source, fault)
            if source == "github":
                return self._github(method, path[len("/github") :], query, headers, target, body)
            if source == "linear":
                return self._linear(method, path, headers, body, target)
            if source == "cron" and path.rstrip("/") == "/cron/v1/stream":
                return self._cron_stream(method, query, headers, target)
            if source == "charlie" and method == "POST":
                status, payload = self.charlie.command(path[len("/charlie") :], body)
                return _json(status, payload)
            return self._simple(source, method, path[len(source) + 1 :], query, target)
        except Exception as exc:  # a bug in the sandbox must not look like a hang to the client
            return _json(500, {"message": f"sandbox error: {type(exc).__name__}: {exc}"})

    # ---- sources -------------------------------------------------------------------------------------
    def _finish(self, target: str, status: int, payload: Any) -> bytes:
        """The body, spoiled by a late fault (bad record, malformed JSON) when one matches."""
        if status == 200 and (found := records(payload)) and self.faults.take(target, True, "bad_record"):
            spoil(found)
        body = _dumps(payload)
        if status == 200 and self.faults.take(target, True, "malformed_json"):
            body = body[: max(1, len(body) // 2)]
        return body

    def _github(self, method: str, path: str, query: dict, headers: Any, target: str, body: bytes) -> Response:
        token = headers.get("Authorization") or "anonymous"
        if path.rstrip("/") == "/graphql":
            self.github_requests["graphql"] += 1
            if method != "POST":
                return _json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/graphql"})
            status, payload, limits = self.github_graphql.handle(body, token, self.github_points)
            if (payload.get("errors") or [{}])[0].get("type") == "RATE_LIMITED":
                self.github_refused += 1
            return Response(status, [("Content-Type", JSON), *limits], self._finish(target, status, payload))
        self.github_requests[self.github.route_of(path)] += 1
        used, reset = self.github_limits.state(token)
        limit = self.github_limits.limit
        if used >= limit:
            return _json(
                403,
                {
                    "message": "API rate limit exceeded for this token. (But here's the good news: "
                    "authenticated requests get a higher rate limit.)",
                    "documentation_url": "https://docs.github.com/rest/rate-limit",
                },
                _rate_headers(limit, used, reset),
            )
        if method != "GET":
            status, payload, extra = 404, {"message": "Not Found"}, {}
        else:
            host = headers.get("Host") or "127.0.0.1"
            status, payload, extra = self.github.handle(path, query, f"http://{host}/github")
        body = self._finish(target, status, payload)
        etag = f'"{hashlib.md5(body).hexdigest()}"'
        out = [("Content-Type", JSON), *extra.items()]
        if status == 200:
            out.append(("ETag", etag))
            wanted = {t.strip().removeprefix("W/") for t in (headers.get("If-None-Match") or "").split(",")}
            if etag in wanted or "*" in wanted:  # a 304 costs no rate limit, as on GitHub
                return Response(304, [("ETag", etag), *_rate_headers(limit, used, reset)], b"")
        used, reset = self.github_limits.state(token, spend=1)
        return Response(status, out + _rate_headers(limit, used, reset), body)

    def _linear(self, method: str, path: str, headers: Any, body: bytes, target: str) -> Response:
        if path.rstrip("/") != "/linear/graphql":
            return _json(404, {"errors": [{"message": "Not Found"}]})
        if method != "POST":
            return _json(405, {"errors": [{"message": "Use POST with a JSON body"}]})
        status, payload, cost = self.linear.handle(body)
        token = headers.get("Authorization") or "anonymous"
        requests_, complexity = self.linear_requests, self.linear_complexity
        used, reset = requests_.state(token)
        spent, creset = complexity.state(token)
        over = used + 1 > requests_.limit or spent + cost > complexity.limit
        if not over:
            used, reset = requests_.state(token, spend=1)
            spent, creset = complexity.state(token, spend=cost)
        limits = [
            ("X-Complexity", str(cost)),
            ("X-RateLimit-Requests-Limit", str(requests_.limit)),
            ("X-RateLimit-Requests-Remaining", str(max(0, requests_.limit - used))),
            ("X-RateLimit-Requests-Reset", str(reset * 1000)),
            ("X-RateLimit-Complexity-Limit", str(complexity.limit)),
            ("X-RateLimit-Complexity-Remaining", str(max(0, complexity.limit - spent))),
            ("X-RateLimit-Complexity-Reset", str(creset * 1000)),
        ]
        if over:  # Linear refuses a query its budget cannot pay for, as a GraphQL error
            self.linear_refused += 1
            return _json(400, {"errors": [{"message": "Rate limit exceeded",
                                           "extensions": {"code": "RATELIMITED"}}]}, limits)
        return Response(status, [("Content-Type", JSON), *limits], self._finish(target, status, payload))

    def _simple(self, source: str, method: str, path: str, query: dict, target: str) -> Response:
        """Charlie and the agent-side JSON APIs: GET only, no rate limit."""
        if method != "GET":
            return _json(404, {"error": "not_found"})
        api = {"charlie": self.charlie, "openclaw": self.openclaw, "cron": self.cron, "weather": self.weather}
        status, payload = api[source].handle(path, query)
        return Response(status, [("Content-Type", JSON)], self._finish(target, status, payload))

    def _cron_stream(self, method: str, query: dict, headers: Any, target: str) -> Response | Stream:
        if method != "GET":
            return _json(404, {"error": "not_found"})
        cut = self.faults.take(target, True, "drop_stream")
        status, error, chunks = self.cron.stream(query, headers.get("Last-Event-ID"),
                                                 cut_after=(cut.after or 0) if cut else None)
        if chunks is None:
            return _json(status, error)
        return Stream(200, [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache"),
                            ("X-Accel-Buffering", "no")], chunks)

    def _fault(self, source: str, fault: Any) -> Response:
        status = fault.status or 503
        headers: list[tuple[str, str]] = []
        if fault.rate_limit and status in (403, 429):
            limit = self.github_limits.limit
            headers += _rate_headers(limit, limit, int(time.time()) + (fault.retry_after or 60))
            message = "API rate limit exceeded for this token."
        else:
            retry = fault.retry_after
            if retry is None and status in (403, 429):
                retry = 1  # secondary rate limits always say when to come back
            if retry is not None:
                headers.append(("Retry-After", str(retry)))
            message = _FAULT_MESSAGES[status]
        payload: Any = {"message": message}
        if source == "linear":
            code = "RATELIMITED" if status in (403, 429) else "INTERNAL_SERVER_ERROR"
            payload = {"errors": [{"message": message, "extensions": {"code": code}}]}
        elif source in SIMPLE_JSON_SOURCES:
            payload = {"error": "unavailable" if status >= 500 else "rate_limited", "message": message}
        return _json(status, payload, headers)

    # ---- admin ---------------------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: bytes) -> Response:
        route = path[len("/_sandbox/") :].rstrip("/")
        if route == "info" and method == "GET":
            return _json(200, self.info())
        if route == "truth" and method == "GET":
            return _json(200, [{**row, "event_at": iso(row["event_at"])} for row in self.truth.rows()])
        if route == "truth/agents" and method == "GET":
            return _json(200, [{**row, "event_at": iso(row["event_at"])} for row in self.agents_truth.rows()])
        if route == "limits" and method == "POST":
            # Fresh budgets: {"linear_requests": n, "linear_complexity": n, "github_graphql_points": n,
            # "period_s": s}; a source not named keeps its budget, and `{}` puts back every default.
            spec = json.loads(body or b"{}")
            period = int(spec.get("period_s", 3600))
            linear = any(k.startswith("linear_") for k in spec)
            if "github_graphql_points" in spec or not linear:
                self.github_points = Windows(int(spec.get("github_graphql_points", self.github_limits.limit)), period)
                self.github_refused = 0
            if "github_graphql_points" in spec and not linear:
                return _json(200, spec)
            self.linear_requests = Windows(int(spec.get("linear_requests", LINEAR_REQUESTS)), period)
            self.linear_complexity = Windows(int(spec.get("linear_complexity", LINEAR_COMPLEXITY)), period)
            self.linear_refused = 0
            return _json(200, spec)
        if route == "faults":
            if method == "GET":
                return _json(200, self.faults.describe())
            if method == "DELETE":
                self.faults.clear()
                return _json(200, [])
            if method == "POST":
                try:
                    return _json(200, self.faults.set(json.loads(body or b"[]")))
                except ValueError as exc:
                    return _json(400, {"message": str(exc)})
        return _json(404, {"message": "Not Found"})

    def info(self) -> dict:
        org = self.org
        return {
            "seed": org.seed,
            "events": org.events_target,
            "events_generated": len(self.truth.event_id),
            "days": org.days,
            "start": iso(org.start),
            "end": iso(org.end),
            "truth_path": str(self.truth_path) if self.truth_path else None,
            "rate_limit": self.github_limits.limit,
            "github_graphql_points": self.github_points.limit,
            "github_requests": dict(sorted(self.github_requests.items())),
            "github_refused": self.github_refused,
            "github_points_spent": self.github_graphql.points_spent,
            "linear_refused": self.linear_refused,
            "org": org.login,
            "repos": [r.full_name for r in org.repos],
            "teams": [t.key for t in org.teams],
            "instances": [i.id for i in org.instances],
            "counts": {
                "linear_issues": len(org.linear_issues),
                "linear_history": sum(len(i.history) for i in org.linear_issues),
                "pulls": len(org.pulls),
                "gh_issues": len(org.gh_issues),
                "reviews": sum(len(p.reviews) for p in org.pulls),
                "commits": len(org.commits) + sum(len(p.commits) for p in org.pulls),
                "activities": len(org.activities),
                "workflow_runs": len(org.workflow_runs),
                "check_runs": sum(len(r.checks) for r in org.workflow_runs),
                "linear_comments": sum(len(i.comments) for i in org.linear_issues),
                "linear_cycles": len(org.cycles),
                "workflows": len({w for w in self.truth.workflow_id if w}),
                "by_event_type": dict(sorted(Counter(self.truth.event_type).items())),
            },
            "agents": {
                "truth_path": str(self.truth_path.with_name(AGENTS_TRUTH)) if self.truth_path else None,
                "sessions": len(self.agents.sessions),
                "cron_jobs": [j.name for j in self.agents.cron_jobs],
                "cron_events": len(self.agents.cron_events),
                "opportunities": len(self.agents.opportunities),
                "events_generated": len(self.agents_truth.event_id),
                "by_event_type": dict(sorted(Counter(self.agents_truth.event_type).items())),
            },
        }


def _operation_name(body: bytes) -> str:
    """The GraphQL operation a request runs: its `operationName`, else its query's first name."""
    try:
        request = json.loads(body or b"null")
        name = request.get("operationName") or re.search(r"\b(?:query|mutation)\s+(\w+)", request["query"])[1]
    except (ValueError, TypeError, KeyError, AttributeError):
        return ""
    return str(name)


def _rate_headers(limit: int, used: int, reset: int) -> list[tuple[str, str]]:
    return [
        ("X-RateLimit-Limit", str(limit)),
        ("X-RateLimit-Remaining", str(max(0, limit - used))),
        ("X-RateLimit-Reset", str(reset)),
        ("X-RateLimit-Used", str(min(used, limit))),
        ("X-RateLimit-Resource", "core"),
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CommandCenterSandbox/1.0"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        response = self.server.app.handle(self.command, self.path, self.headers, body)  # type: ignore[attr-defined]
        if response is None:
            self.close_connection = True
            return
        if isinstance(response, Stream):
            self._stream(response)
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status != 304:  # a 304 has no body, so no length either
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.status != 304:
            self.wfile.write(response.body)

    def _stream(self, response: Stream) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunks = response.chunks
        try:
            for chunk in chunks:
                if chunk is None:  # a dropped connection: no last chunk, the client sees the stream break
                    self.close_connection = True
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away
            self.close_connection = True
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        super().__init__(address, _Handler)
        self.app = app


def build_app(out_dir: Path, seed: int, events: int, days: int, end: Any, rate_limit: int) -> SandboxApp:
    """Generate the world, write `truth.parquet` and `truth_agents.parquet` into `out_dir`, and index
    the world for serving."""
    with paused_gc():
        org = generate(seed, events, days, end)
        truth = truth_mod.build(org)
        path = truth_mod.write_parquet(truth, Path(out_dir) / "truth.parquet")
        agents = generate_agents(org)
        agents_truth = truth_mod.build_agents(agents, truth)
        truth_mod.write_parquet(agents_truth, Path(out_dir) / AGENTS_TRUTH)
        app = SandboxApp(org, truth, path, rate_limit, agents, agents_truth)
    gc.freeze()  # the world lives as long as the process: keep later collections from walking it
    return app


def serve(
    out_dir: Path,
    *,
    seed: int = 7,
    events: int = 5000,
    days: int = 7,
    end: Any = None,
    host: str = "127.0.0.1",
    port: int = 0,
    rate_limit: int = 5000,
    ready_file: Path | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; the ready file appears once the socket accepts connections."""
    started = time.monotonic()
    app = build_app(out_dir, seed, events, days, end, rate_limit)
    server = SandboxServer((host, port), app)
    url = f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{server.server_address[1]}"
    if ready_file:
        ready_file = Path(ready_file)
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "truth_path": str(app.truth_path)}))
        tmp.replace(ready_file)  # atomic: a reader never sees half a file

    def stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(
        f"sandbox at {url}: {len(app.truth.event_id)} events, ready in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
        flush=True,
    )
    print(url, flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
