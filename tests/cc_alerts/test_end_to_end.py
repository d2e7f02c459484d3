"""The bar of issue 13, end to end: a sandbox source switched to failing raises an alert that
reaches `alerts:all`, `/api/alerts` and a real SMTP inbox within 60 s; switched back, it is
resolved everywhere. Real sandbox, real sidecar process, real Dagster sensor ticks, real SMTP."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
from dagster import DagsterInstance, build_sensor_context
from websockets.sync.client import connect

from resources.platform import PlatformResource
from sandbox.process import run_sandbox
from scripts.chaos.harness import SECRETS, Sidecar
from sensors.github import github_sensor

BAR_S = 60.0


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=300, days=1,
                     end=datetime.now(UTC).replace(tzinfo=None, microsecond=0)) as handle:
        yield handle


class Room:
    """A `/ws` client in `alerts:all`, collecting every message on a thread."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.messages: list[dict] = []
        self._ws = connect(f"{sidecar.ws_url}?token={sidecar.token()}").__enter__()
        self._ws.send(json.dumps({"type": "subscribe", "rooms": ["alerts:all"]}))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for text in self._ws:
                self.messages.append(json.loads(text))
        except Exception:  # noqa: BLE001 - closed at the end of the test
            pass

    def alerts(self, kind: str) -> list[dict]:
        return [m["payload"] for m in self.messages if m.get("type") == kind]

    def close(self) -> None:
        self._ws.__exit__(None, None, None)


def wait_for(what, timeout: float = BAR_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    return what()


def test_a_failing_source_reaches_the_room_the_api_and_the_inbox_and_its_recovery_too(
        sandbox, smtp, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    env = {"CC_SANDBOX_URL": sandbox.url, "CC_ALERT_URLS": smtp.url, "CC_ALERT_GROUP_S": "5",
           "CC_CIRCUIT_OPEN_S": "2", "CC_HTTP_MAX_RETRIES": "0"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sidecar = Sidecar(data_dir, {**SECRETS, **env}).start()
    room = Room(sidecar)
    platform = PlatformResource(data_dir=str(data_dir), sandbox_url=sandbox.url)
    headers = {"Authorization": f"Bearer {sidecar.token()}"}

    def tick():
        context = build_sensor_context(instance=DagsterInstance.ephemeral(), resources={"platform": platform})
        return github_sensor(context)

    def api(state: str) -> list[dict]:
        found = requests.get(f"{sidecar.url}/api/alerts", params={"rule": "circuit_open", "state": state},
                             headers=headers, timeout=10).json()["alerts"]
        return [a for a in found if a["subject"]["key"] == "source:github"]

    try:
        sandbox.set_faults([{"match": "/github", "kind": "down"}])
        failed_at = time.monotonic()
        while not platform_breaker_open(platform) and time.monotonic() - failed_at < BAR_S:
            tick()  # the change sensor's probe, as the daemon runs it: each one a failed request
        opened = wait_for(lambda: [a for a in room.alerts("alert.opened") if a["rule"] == "circuit_open"])
        in_api = wait_for(lambda: api("open"))
        mailed = wait_for(lambda: [s for s in smtp.subjects() if "circuit_open" in s and "source:github" in s])
        took = time.monotonic() - failed_at
        assert opened and opened[0]["severity"] == "critical" and "github" in opened[0]["message"]
        assert in_api and in_api[0]["id"] == opened[0]["id"]
        assert mailed, smtp.subjects()
        assert took < BAR_S

        sandbox.clear_faults()
        cleared_at = time.monotonic()
        time.sleep(2.1)  # the circuit's open period: the next tick is its half-open trial
        assert not isinstance(tick(), type(None))
        resolved = wait_for(lambda: [a for a in room.alerts("alert.resolved") if a["rule"] == "circuit_open"])
        gone = wait_for(lambda: api("resolved"))
        told = wait_for(lambda: [s for s in smtp.subjects() if s.startswith("[Command Center] resolved")])
        assert resolved and resolved[0]["id"] == opened[0]["id"] and gone and told, smtp.subjects()
        assert time.monotonic() - cleared_at < BAR_S
        print(f"\nfailing → alert in room, API and inbox: {took:.1f} s; "
              f"recovered → resolved everywhere: {time.monotonic() - cleared_at:.1f} s")
    finally:
        sandbox.clear_faults()
        room.close()
        sidecar.stop()


def platform_breaker_open(platform: PlatformResource) -> bool:
    from sensors.triggers import circuit_breaker

    return circuit_breaker(platform, "github").is_open()


def test_1000_failures_in_a_minute_are_a_few_emails_and_every_one_is_counted(smtp, tmp_path):
    """A storm: 1,000 deliveries the normalizer cannot use (dead letters: landed with the reason),
    from three senders, in well under a minute. Each sender's problem is one alert that counts them;
    the inbox gets a handful of messages, not a thousand."""
    from scripts.chaos.harness import github_headers, signed_headers

    sidecar = Sidecar(tmp_path / "data", {**SECRETS, "CC_ALERT_URLS": smtp.url}).start()
    headers = {"Authorization": f"Bearer {sidecar.token()}"}
    sent = {"github": 0, "charlie": 0, "events": 0}
    try:
        with requests.Session() as http:
            for n in range(1000):
                source = ("github", "charlie", "events")[n % 3]
                if source == "github":
                    body = json.dumps({"action": "opened", "repository": {"full_name": "acme/api"}, "n": n}).encode()
                    answer = http.post(f"{sidecar.url}/webhooks/github", data=body,
                                       headers=github_headers(body, "pull_request"), timeout=10)
                elif source == "charlie":
                    body = json.dumps({"id": f"act-{n}", "instance": "charlie-alpha"}).encode()
                    answer = http.post(f"{sidecar.url}/webhooks/charlie", data=body,
                                       headers=signed_headers(body, SECRETS["CC_CHARLIE_WEBHOOK_SECRET"]), timeout=10)
                else:
                    body = json.dumps({"kind": "cron.event", "id": f"bad-{n}", "data": {"job": "backup"}}).encode()
                    answer = http.post(f"{sidecar.url}/events", data=body, timeout=10, headers={
                        "Content-Type": "application/json", "Authorization": f"Bearer {SECRETS['CC_EVENTS_API_TOKEN']}"})
                assert answer.status_code == 202 and answer.json()["status"] == "dead_letter", answer.text
                sent[source] += 1

        def alerted() -> list[dict]:
            found = requests.get(f"{sidecar.url}/api/alerts", params={"rule": "schema_validation"},
                                 headers=headers, timeout=10).json()["alerts"]
            return found if len(found) == 3 else []

        alerts = wait_for(alerted, 75)
        assert sorted(a["subject"]["key"] for a in alerts) == ["source:charlie", "source:events", "source:github"]
        told = wait_for(lambda: all(any(s in smtp.body(i) for i in range(len(smtp.messages)))
                                    for s in ("source:github", "source:charlie", "source:events")), 75)
        assert told, [smtp.body(i) for i in range(len(smtp.messages))]
        assert 1 <= len(smtp.messages) <= 3, smtp.subjects()
        # Every one is counted: each alert's count reaches what its sender sent. (Its message counts
        # the rule's last 60 s, which on a loaded host holds only the storm's end.)
        def counted() -> list[dict]:
            found = alerted()
            return found if found and all(a["count"] == sent[a["subject"]["name"]] for a in found) else []

        alerts = wait_for(counted, 75) or alerted()
        assert {a["subject"]["name"]: a["count"] for a in alerts} == sent
        for alert in alerts:
            assert alert["message"].startswith(f"{alert['subject']['name']}: "), alert["message"]
            assert "dropped as schema-invalid" in alert["message"], alert["message"]
    finally:
        sidecar.stop()


def test_the_api_pages_filters_and_acknowledges_what_any_process_raised(tmp_path):
    """Alerts a Dagster process wrote to the shared store are listed, paged and acknowledged over
    REST, and the acknowledgement reaches `alerts:all`."""
    from cc_alerts.model import Finding
    from cc_alerts.store import AlertStore, alert_store_path

    data_dir = tmp_path / "data"
    sidecar = Sidecar(data_dir, {**SECRETS, "CC_ALERT_MONITOR": "false"}).start()
    room = Room(sidecar)
    store = AlertStore(alert_store_path(data_dir))  # as a Dagster sensor writes it
    headers = {"Authorization": f"Bearer {sidecar.token()}"}
    try:
        for n in range(7):
            store.raise_alert(Finding("dagster_run_failed", f"job:job_{n}", "critical" if n < 2 else "warning",
                                      f"job_{n} failed", links={"run": f"http://127.0.0.1:3000/runs/{n}"}))
        store.resolve("dagster_run_failed", "job:job_6")
        pages, cursor = [], None
        while True:
            params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = requests.get(f"{sidecar.url}/api/alerts", params=params, headers=headers, timeout=10).json()
            pages.append([a["subject"]["name"] for a in page["alerts"]])
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert [len(p) for p in pages] == [3, 3, 1]
        assert sorted(sum(pages, [])) == [f"job_{n}" for n in range(7)]
        assert page["counts"] == {"open": {"critical": 2, "warning": 4}, "acknowledged": {}}
        critical = requests.get(f"{sidecar.url}/api/alerts", params={"severity": "critical", "state": "open"},
                                headers=headers, timeout=10).json()["alerts"]
        assert sorted(a["subject"]["name"] for a in critical) == ["job_0", "job_1"]
        acked = requests.post(f"{sidecar.url}/api/alerts/{critical[0]['id']}/ack", headers=headers, timeout=10)
        assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
        assert acked.json()["acknowledgedBy"] == "tester"
        assert wait_for(lambda: [a for a in room.alerts("alert.acknowledged") if a["id"] == critical[0]["id"]], 10)
        resolved = store.list(state=["resolved"])[0]
        assert requests.post(f"{sidecar.url}/api/alerts/{resolved.id}/ack", headers=headers,
                             timeout=10).status_code == 409
        assert requests.post(f"{sidecar.url}/api/alerts/nope/ack", headers=headers, timeout=10).status_code == 404
        reader = {"Authorization": f"Bearer {sidecar.token(rooms=['alerts:all'])}"}
        assert requests.get(f"{sidecar.url}/api/alerts", headers=reader, timeout=10).status_code == 200
        assert requests.post(f"{sidecar.url}/api/alerts/{critical[1]['id']}/ack", headers=reader,
                             timeout=10).status_code == 403  # reading is not acknowledging
        rules = requests.get(f"{sidecar.url}/api/alerts/rules", headers=headers, timeout=10).json()
        assert {r["name"] for r in rules["rules"]} >= {"stale_data", "circuit_open", "dagster_run_failed"}
    finally:
        store.close()
        room.close()
        sidecar.stop()
