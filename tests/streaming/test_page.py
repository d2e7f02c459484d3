"""The command-center page and the API docs as a browser sees them: Debian's Chromium driven by
Playwright's sync API (`executable_path`: Playwright's own browser download cannot work here),
against a real sidecar process. Screenshots go to each test's tmp dir as artifacts.

Without chromium or playwright these skip with the reason; under CI=true they fail instead. The
page's own tests skip while `streaming/static/page/index.html` is not built; `CC_TEST_STATIC_DIR`
points them (and the docs' tests) at a build elsewhere, as `CC_STATIC_DIR` points the sidecar.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from scripts.chaos.harness import ROOT, SECRETS, Sidecar
from streaming.auth import NO_SECRET, issue_token

STATIC = Path(os.environ.get("CC_TEST_STATIC_DIR") or ROOT / "streaming" / "static")
PAGE_INDEX = STATIC / "page" / "index.html"
VENDOR = (STATIC / "vendor" / "swagger-ui" / "swagger-ui-bundle.js", STATIC / "vendor" / "swagger-ui" / "swagger-ui.css",
          STATIC / "vendor" / "redoc" / "redoc.standalone.js")
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
IN_CI = os.environ.get("CI", "").lower() == "true"

needs_page = pytest.mark.skipif(not PAGE_INDEX.is_file(),
                                reason="the page is not built (streaming/static/page/index.html)")


def _missing(problem: str) -> None:
    if IN_CI:
        pytest.fail(f"CI must run the browser tests: {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = shutil.which("chromium")
    if executable is None:
        _missing("chromium is not installed (make install: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def vendor() -> Path:
    missing = [str(p.relative_to(STATIC)) for p in VENDOR if not p.is_file()]
    if missing:
        _missing(f"the docs' assets are not built ({', '.join(missing)} under {STATIC})")
    return STATIC


@dataclass
class Visit:
    """One page in the browser, with everything it asked for and everything that went wrong."""

    page: object
    base: str
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # refused by the page's CSP: never left the browser

    def elsewhere(self) -> list[str]:
        """Requests that left for any host but the sidecar (data: and blob: URLs ask nobody)."""
        own = urlparse(self.base).netloc
        return [u for u in self.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and urlparse(u).netloc != own and u not in self.blocked]

    def errors_but_blocked(self) -> list[str]:
        """Console errors, less the browser's own note of each request the CSP kept in."""
        return [e for e in self.errors if not ("Content Security Policy" in e and any(u in e for u in self.blocked))]

    def _failed(self, request) -> None:
        if (request.failure or "") in ("csp", "net::ERR_BLOCKED_BY_CSP"):
            self.blocked.append(request.url)
        else:
            self.failed.append(f"{request.url}: {request.failure}")

    def shot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def visit(browser) -> Iterator:
    contexts = []

    def open_(base: str, path: str = "/", width: str = "desktop") -> Visit:
        w, h = WIDTHS[width]
        context = browser.new_context(viewport={"width": w, "height": h})
        contexts.append(context)
        page = context.new_page()
        seen = Visit(page, base)
        page.on("request", lambda r: seen.requests.append(r.url))
        page.on("requestfailed", seen._failed)
        page.on("response", lambda r: seen.failed.append(f"{r.url}: {r.status}") if r.status >= 400 else None)
        page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: seen.errors.append(str(e)))
        page.goto(base + path, wait_until="load")
        return seen

    yield open_
    for context in contexts:
        context.close()


def _static_dir(tmp_path: Path, page: bool) -> Path:
    """A static folder for a sidecar: the real vendor assets (if built) and, if `page`, a placeholder page."""
    root = tmp_path / "static"
    root.mkdir()
    if (STATIC / "vendor").is_dir():
        (root / "vendor").symlink_to(STATIC / "vendor")
    if page:
        (root / "page").mkdir()
        (root / "page" / "index.html").write_text(
            '<!doctype html><html><head><title>placeholder</title>'
            '<script src="/static/page/app.3f9a2c1b.js"></script></head><body><h1>placeholder page</h1></body></html>')
        (root / "page" / "app.3f9a2c1b.js").write_text("// placeholder\n" + "window.placeholder = 1;\n" * 200)
        (root / "page" / "app.css").write_text("body { margin: 0 }\n" * 200)
    return root


# --- the sidecar's side: no page needed ----------------------------------------------------------


def test_root_without_a_built_page_says_how_to_build_it(make_sidecar, tmp_path):
    server = make_sidecar({"CC_STATIC_DIR": str(_static_dir(tmp_path, page=False))})
    answer = requests.get(server.url + "/", timeout=10)
    assert answer.status_code == 503 and answer.headers["content-type"].startswith("text/html")
    assert "is not built" in answer.text and "npm run build" in answer.text and "/docs" in answer.text


def test_root_serves_the_built_page_and_static_is_compressed_and_cached(make_sidecar, tmp_path):
    root = _static_dir(tmp_path, page=True)
    server = make_sidecar({"CC_STATIC_DIR": str(root)})
    index = requests.get(server.url + "/", timeout=10)  # no token: the page asks for one itself
    assert index.status_code == 200 and "placeholder page" in index.text
    assert index.headers["cache-control"] == "no-cache" and index.headers["etag"]
    # The page may run only its own script and talk only to this origin.
    assert "script-src 'self';" in index.headers["content-security-policy"]
    assert "connect-src 'self'" in index.headers["content-security-policy"]
    assert requests.get(server.url + "/", headers={"If-None-Match": index.headers["etag"]}, timeout=10).status_code == 304
    assert SECRETS["CC_JWT_SECRET"] not in index.text

    hashed = requests.get(server.url + "/static/page/app.3f9a2c1b.js", headers={"Accept-Encoding": "gzip"},
                          stream=True, timeout=10)
    assert hashed.headers["content-encoding"] == "gzip"
    assert hashed.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert gzip.decompress(hashed.raw.read()) == (root / "page" / "app.3f9a2c1b.js").read_bytes()
    plain = requests.get(server.url + "/static/page/app.css", timeout=10)
    assert plain.headers["cache-control"] == "no-cache" and plain.headers["content-encoding"] == "gzip"
    assert requests.get(server.url + "/static/page/app.css", headers={"If-None-Match": plain.headers["etag"]},
                        timeout=10).status_code == 304
    assert requests.get(server.url + "/static/page/nothing.js", timeout=10).status_code == 404
    refused = requests.post(server.url + "/static/page/app.css", timeout=10)
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    assert requests.post(server.url + "/", timeout=10).headers["allow"] == "GET, HEAD"
    assert requests.get(server.url + "/static/../../resources/settings.py", timeout=10).status_code == 404

    # Neither the page nor its assets are in the API's document; the webhooks and REST are not gzipped.
    paths = requests.get(server.url + "/openapi.json", timeout=10).json()["paths"]
    assert not [p for p in paths if p in ("/", "/docs", "/redoc") or p.startswith("/static")]
    token = issue_token(SECRETS["CC_JWT_SECRET"], "tester")
    rest = requests.get(server.url + "/dashboard/dashboards", headers={"Authorization": f"Bearer {token}",
                                                                       "Accept-Encoding": "gzip"}, timeout=10)
    assert rest.status_code == 200 and "content-encoding" not in rest.headers


def test_with_no_jwt_secret_rest_says_none_is_configured(make_sidecar):
    server = make_sidecar(secrets=False)
    token = issue_token("any-secret", "tester")
    for headers in ({}, {"Authorization": f"Bearer {token}"}):
        answer = requests.get(server.url + "/dashboard/overview", headers=headers, timeout=10)
        assert answer.status_code == 401 and answer.json()["detail"] == NO_SECRET
    assert "CC_JWT_SECRET" in NO_SECRET
    server.log.flush()
    assert NO_SECRET in Path(server.log.name).read_text()  # said at start-up too, before anyone asks


@pytest.mark.parametrize("path, rendered", [("/docs", ".opblock"), ("/redoc", "[data-section-id^='operation/']")])
def test_the_docs_render_from_the_sidecar_alone(make_sidecar, visit, vendor, tmp_path, path, rendered):
    """No request leaves for a CDN, Google Fonts or a favicon host, and the API's operations show."""
    server = make_sidecar({"CC_STATIC_DIR": str(vendor)})
    seen = visit(server.url, path)
    seen.page.wait_for_selector(rendered, timeout=30_000)
    operations = requests.get(server.url + "/openapi.json", timeout=10).json()["paths"]
    count = seen.page.locator(rendered).count()
    assert count >= sum(len(methods) for methods in operations.values()) * (1 if path == "/docs" else 0.5)
    if path == "/docs":
        assert seen.page.get_by_text("/api/workflows", exact=True).first.is_visible()
    seen.shot(tmp_path / f"{path.strip('/')}.png")
    assert seen.elsewhere() == []
    assert any(u.startswith(server.url + "/static/vendor/") for u in seen.requests)
    assert seen.failed == [] and seen.errors_but_blocked() == []


# --- the page (skipped until it is built) ---------------------------------------------------------


@dataclass
class Built:
    server: Sidecar
    sandbox_url: str

    def token(self, **claims) -> str:
        return issue_token(SECRETS["CC_JWT_SECRET"], "operator", 3600,
                           scopes=claims.pop("scopes", ["commands", "dashboards", "alerts"]), **claims)

    def get(self, path: str, **params) -> dict:
        answer = requests.get(self.server.url + path, params=params, timeout=30,
                              headers={"Authorization": f"Bearer {self.token()}"})
        answer.raise_for_status()
        return answer.json()


@pytest.fixture(scope="module")
def built(tmp_path_factory, request) -> Iterator[Built]:
    """A sidecar on a copy of the session's built world (`now_world`, tests/streaming/conftest.py)."""
    if not PAGE_INDEX.is_file():
        pytest.skip("the page is not built (streaming/static/page/index.html)")
    from scripts.chaos.built import sidecar_on

    world = request.getfixturevalue("now_world")
    data_dir = world.copy(tmp_path_factory.mktemp("page") / "data")
    with sidecar_on(data_dir, world.sandbox.url, env={"CC_STATIC_DIR": str(STATIC)}) as server:
        # The live state compiles its models at start-up (a dbt child process: tens of seconds on a
        # loaded host); a webhook before it is ready moves the tiles only once it is, which a test
        # waiting 15 s for the tile took for a lost update.
        deadline = time.monotonic() + 180
        while requests.get(f"{server.url}/healthz", timeout=10).json().get("live_state") != "ready":
            assert time.monotonic() < deadline, "the live state was not ready in 180 s"
            time.sleep(0.2)
        yield Built(server, world.sandbox.url)


def _logged_in(visit, built: Built, width: str = "desktop", **claims) -> Visit:
    seen = visit(built.server.url, f"/#token={built.token(**claims)}", width)
    seen.page.wait_for_selector("[data-testid=connection-state]")
    # Locator waits, not wait_for_function: the page's CSP forbids the eval that one needs.
    expect(seen.page.locator("[data-testid=tile-active] [data-testid=tile-value]")).to_have_text(
        re.compile(r"\S"), timeout=15_000)
    return seen


def _tile(seen: Visit, name: str) -> str:
    return seen.page.locator(f"[data-testid=tile-{name}] [data-testid=tile-value]").inner_text().strip()


def _pull_request(repo: str, number: int, title: str) -> tuple[bytes, dict]:
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    payload = {"action": "opened", "number": number, "repository": {"full_name": repo},
               "sender": {"login": "octo", "type": "User"},
               "pull_request": {"id": 9_000_000 + number, "number": number, "title": title, "body": "", "state": "open",
                                "draft": False, "created_at": stamp, "updated_at": stamp, "merged_at": None,
                                "closed_at": None, "html_url": f"https://github.com/{repo}/pull/{number}",
                                "user": {"login": "octo", "type": "User"}, "head": {"ref": f"page-{number}"},
                                "base": {"repo": {"full_name": repo}}}}
    from scripts.chaos.harness import github_headers

    body = json.dumps(payload).encode()
    return body, github_headers(body, "pull_request")


def _as_intl_rounds(usd: float) -> str:
    """Dollars to cents as the page's Intl.NumberFormat rounds them: the number's shortest decimal
    form, half up ($51.095 is $51.10), where Python's `:.2f` rounds the binary value ($51.09)."""
    return f"{Decimal(repr(usd)).quantize(Decimal('0.01'), ROUND_HALF_UP):,}"


@needs_page
@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_the_page_loads_populated_with_no_errors(built, visit, tmp_path, width):
    seen = _logged_in(visit, built, width)
    seen.page.wait_for_selector("[data-testid=workflow-row]")
    for tile in ("active", "completed-today", "cost-today", "cron", "pnl", "charlie", "alerts"):
        assert _tile(seen, tile), tile
    assert seen.page.locator("[data-testid=feed]").is_visible()
    # The token came in the fragment, which no request carried.
    assert not [u for u in seen.requests if "token=" in u and "/socket.io/" not in u and "/ws" not in u]
    shot = seen.shot(tmp_path / f"page-{WIDTHS[width][0]}.png")
    assert shot.stat().st_size > 0
    # Over 30 days the cost and cron charts say what /dashboard/metrics counts (sessions, runs, failures).
    month = built.get("/dashboard/metrics", timeRange="30d")
    seen.page.locator("[data-range='30d']").click()
    charts = seen.page.locator("[data-testid=charts]")
    expect(charts).to_contain_text(f"{month['sessions']['sessions']:,} sessions, "
                                   f"${_as_intl_rounds(month['sessions']['costUsd'])} in range", timeout=10_000)
    expect(charts).to_contain_text(f"{month['cron']['runs']:,} runs, {month['cron']['failed']:,} failed")
    assert month["sessions"]["sessions"] > 0 and month["cron"]["runs"] > 0, charts.inner_text()
    assert seen.elsewhere() == [] and seen.failed == [] and seen.errors == []


@needs_page
def test_a_signed_webhook_shows_in_the_feed_and_moves_the_tiles(built, visit, tmp_path):
    seen = _logged_in(visit, built)
    active = _tile(seen, "active")
    body, headers = _pull_request("acme/page-test", 4242, "Brand new from the page test")
    posted_at = time.monotonic()
    assert requests.post(built.server.url + "/webhooks/github", data=body, headers=headers, timeout=10).status_code == 202
    item = seen.page.locator("[data-testid=feed-item][data-workflow-id='github:acme/page-test#4242']")
    item.first.wait_for(timeout=15_000)
    expect(seen.page.locator("[data-testid=tile-active] [data-testid=tile-value]")).not_to_have_text(
        active, timeout=30_000)
    # The issue's bar is a second from the sender's 202; the waits above allow more so a loaded CI host does
    # not fail it (no timed assertions), and the time it took is written beside the screenshot.
    (tmp_path / "webhook-to-page-s.txt").write_text(f"{time.monotonic() - posted_at:.3f}\n")
    seen.shot(tmp_path / "after-webhook.png")
    assert seen.errors == []


@needs_page
def test_a_burst_of_new_workflows_keeps_the_table_its_size_and_paging_reaches_every_row(built, visit):
    """Each new pull request is a new workflow at the top; the table keeps the rows it had loaded
    (the oldest move off), and "Load more" resumes right after the last row shown: nothing skipped."""
    seen = _logged_in(visit, built)
    rows = seen.page.locator("[data-testid=workflow-row]")
    rows.first.wait_for()
    shown = rows.count()
    for n in range(shown + 5):
        body, headers = _pull_request("acme/burst", 7000 + n, f"Burst {n}")
        assert requests.post(built.server.url + "/webhooks/github", data=body, headers=headers,
                             timeout=10).status_code == 202
    newest = "github:acme/burst#" + str(7000 + shown + 4)
    expect(rows.first).to_have_attribute("data-workflow-id", newest, timeout=15_000)
    assert rows.count() == shown
    seen.page.locator("[data-testid=load-more]").click()
    expect(rows).to_have_count(shown * 2, timeout=15_000)
    ids = [rows.nth(i).get_attribute("data-workflow-id") for i in range(rows.count())]
    first_page = built.get("/api/workflows", limit=shown * 2)["workflows"]
    assert ids == [w["id"] for w in first_page]
    assert seen.errors == []


@needs_page
def test_a_linear_issue_moved_to_done_completes_its_workflow_on_the_page(built, visit, linear_webhooks):
    """A Linear issue is opened and moved to Done by webhooks while the page is open: its workflow
    row appears and turns completed without a reload (the live state's `workflow.updated`)."""
    from scripts.chaos.harness import linear_body, linear_headers

    def send(payload: dict) -> None:
        body = linear_body(payload)
        assert requests.post(built.server.url + "/webhooks/linear", data=body, headers=linear_headers(body),
                             timeout=10).status_code == 202

    seen = _logged_in(visit, built)
    key, issue_id = "ENG-9001", "lin-page-9001"
    now = datetime.now(UTC)
    send(linear_webhooks.state_changed(issue_id=issue_id, identifier=key, at=now.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
    deadline = time.monotonic() + 15
    workflow = None
    while workflow is None and time.monotonic() < deadline:
        workflow = next((w for w in built.get("/api/workflows", limit=200)["workflows"]
                         if w.get("linearIssueKey") == key), None)
        time.sleep(0.2)
    assert workflow is not None and workflow["status"] != "completed", workflow
    status = f"[data-testid=workflow-row][data-workflow-id='{workflow['id']}'] [data-testid=workflow-status]"
    seen.page.wait_for_selector(status, timeout=10_000)
    done_at = (now + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    send(linear_webhooks.state_changed(issue_id=issue_id, identifier=key, at=done_at,
                                       to={"id": "state-done", "name": "Done", "color": "#5e6ad2", "type": "completed"},
                                       previous=linear_webhooks.STARTED))
    expect(seen.page.locator(status)).to_contain_text("completed", ignore_case=True, timeout=10_000)
    assert seen.errors == []


@needs_page
def test_the_drilldown_shows_the_workflows_events(built, visit, tmp_path):
    seen = _logged_in(visit, built)
    row = seen.page.locator("[data-testid=workflow-row]").first
    workflow_id = row.get_attribute("data-workflow-id")
    row.click()
    seen.page.wait_for_selector("[data-testid=drilldown] [data-testid=timeline-item]")
    events = built.get("/api/events", workflow=workflow_id, limit=1000)["events"]
    shown = seen.page.locator("[data-testid=drilldown] [data-testid=timeline-item]")
    expect(shown).to_have_count(len(events))
    ids = {shown.nth(i).get_attribute("data-event-id") for i in range(shown.count())}
    assert {e["id"] for e in events} <= ids
    seen.shot(tmp_path / "drilldown.png")


@needs_page
def test_a_charlie_command_reaches_the_sandbox(built, visit, tmp_path):
    instances = built.get("/api/charlie/instances")["instances"]
    running = next(i for i in instances if (i["health"] or {}).get("status") not in (None, "offline"))
    sent_to = f"{built.sandbox_url}/charlie/instances/{running['id']}/commands"
    before = len(requests.get(sent_to, timeout=10).json()["commands"])
    seen = _logged_in(visit, built)
    seen.page.locator(f"[data-testid=charlie-row][data-instance-id='{running['id']}'] [data-command=pause]").click()
    seen.page.locator("[data-testid=confirm-dialog]").wait_for()
    seen.page.locator("[data-testid=confirm-yes]").click()
    result = seen.page.locator("[data-testid=command-result]:not([data-state=pending])")
    result.wait_for()
    assert result.get_attribute("data-state") == "ok", result.inner_text()
    received = requests.get(sent_to, timeout=10).json()["commands"]
    assert len(received) == before + 1 and received[-1]["command"] == "pause"
    seen.shot(tmp_path / "command.png")


@needs_page
def test_cancelling_the_confirmation_sends_nothing(built, visit):
    instances = built.get("/api/charlie/instances")["instances"]
    running = next(i for i in instances if (i["health"] or {}).get("status") not in (None, "offline"))
    sent_to = f"{built.sandbox_url}/charlie/instances/{running['id']}/commands"
    before = len(requests.get(sent_to, timeout=10).json()["commands"])
    seen = _logged_in(visit, built)
    seen.page.locator(f"[data-testid=charlie-row][data-instance-id='{running['id']}'] [data-command=resume]").click()
    seen.page.locator("[data-testid=confirm-no]").click()
    assert seen.page.locator("[data-testid=confirm-dialog]").is_hidden()
    assert len(requests.get(sent_to, timeout=10).json()["commands"]) == before


@needs_page
@pytest.mark.parametrize("token", ["not-a-jwt", "expired", "wrong-secret"])
def test_a_bad_token_shows_a_clear_message(built, visit, tmp_path, token):
    tokens = {"not-a-jwt": "not-a-jwt",
              "expired": issue_token(SECRETS["CC_JWT_SECRET"], "operator", -60),
              "wrong-secret": issue_token("another-secret", "operator")}
    seen = visit(built.server.url, f"/#token={tokens[token]}")
    message = seen.page.locator("[data-testid=auth-error]")
    message.wait_for(timeout=10_000)
    assert message.inner_text().strip()
    assert seen.page.locator("[data-testid=token-form]").is_visible()
    seen.shot(tmp_path / f"bad-token-{token}.png")
    assert not [e for e in seen.errors if "Uncaught" in e]


@needs_page
def test_without_a_token_the_page_asks_for_one(built, visit):
    seen = visit(built.server.url, "/")
    seen.page.locator("[data-testid=token-form]").wait_for(timeout=10_000)
    assert not [u for u in seen.requests if "/api/" in u or "/dashboard/" in u]  # nothing asked without a token
