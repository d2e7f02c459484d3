"""The normalizer on OpenClaw sessions, cron events and weather opportunities (docs/contract_sources.md)."""

from datetime import UTC

import pytest

from cc_events import InvalidRecord, NormalizeContext, normalize
from cc_events.registry import NORMALIZERS, RAW_TABLES
from sandbox import generate
from sandbox import truth as truth_mod
from sandbox.agents import generate_agents
from sandbox.cron import cron_record
from sandbox.openclaw import session_record
from sandbox.weather import opportunity_record

CTX = NormalizeContext(
    linear_team_keys=frozenset({"ENG", "OPS"}),
    charlie_github_logins={"charlie-alpha[bot]": "charlie-alpha"},
    charlie_linear_users={"u-charlie": "charlie-alpha"},
    charlie_names={"charlie-alpha": "Charlie Alpha"},
)

SESSION = {
    "id": "ses_1", "agent": "charlie-alpha", "instance_id": "charlie-alpha", "status": "completed",
    "model": "claude-sonnet-4-5", "started_at": "2026-11-20T10:00:00Z", "ended_at": "2026-11-20T10:42:10Z",
    "updated_at": "2026-11-20T10:42:10Z", "tokens_input": 812_000, "tokens_output": 23_400, "cost_usd": 2.787,
    "issue_key": "ENG-7", "repo": "Acme/API", "pr_number": 12, "title": "ENG-7: speed up SHA-256 hashing",
}


def test_a_finished_charlie_session_is_two_events_naming_its_issue_and_pr():
    started, ended = normalize("openclaw", "sessions", SESSION, CTX)
    assert (started.id, started.type) == ("openclaw:session:ses_1:started", "openclaw.session.started")
    assert (ended.id, ended.type) == ("openclaw:session:ses_1:ended", "openclaw.session.completed")
    assert started.timestamp.isoformat() == "2026-11-20T10:00:00"
    assert ended.timestamp.isoformat() == "2026-11-20T10:42:10" and ended.parent_event_id == started.id
    assert [k.key for k in started.keys] == ["github:acme/api#12", "linear:ENG-7"] == [k.key for k in ended.keys]
    assert started.actor.type == "charlie" and started.actor.instance == "charlie-alpha"
    assert started.actor.name == "Charlie Alpha"
    assert started.payload == {"tokens_input": 812_000, "tokens_output": 23_400, "cost_usd": 2.787,
                               "model": "claude-sonnet-4-5", "status": "completed", "agent": "charlie-alpha"}
    assert started.target.type == "session" and started.target.id == "ses_1"


def test_running_sessions_of_other_agents_are_bots_with_one_event():
    record = {**SESSION, "agent": "claude-code", "instance_id": None, "status": "running", "ended_at": None,
              "issue_key": None, "repo": None, "pr_number": None, "title": "Explain the UTF-8 and ISO-8601 code",
              "cost_usd": "0.125"}
    [started] = normalize("openclaw", "sessions", record, CTX)
    assert started.actor.type == "bot" and started.actor.id == "openclaw:claude-code"
    assert started.keys == ()  # decoys in the title are not keys
    assert started.payload["cost_usd"] == 0.125 and started.payload["status"] == "running"
    for status, kind in (("failed", "openclaw.session.failed"), ("cancelled", "openclaw.session.cancelled")):
        assert normalize("openclaw", "sessions", {**SESSION, "status": status}, CTX)[1].type == kind


def test_session_keys_only_for_known_teams_and_from_the_title():
    record = {**SESSION, "issue_key": "ABC-1", "repo": None, "pr_number": None,
              "title": "Review acme/web#3 for OPS-2"}
    keys = [k.key for k in normalize("openclaw", "sessions", record, CTX)[0].keys]
    assert keys == ["github:acme/web#3", "linear:OPS-2"]
    by_login = normalize("openclaw", "sessions", {**SESSION, "agent": "charlie-alpha[bot]", "instance_id": None},
                         CTX)[0]
    assert by_login.actor.type == "charlie" and by_login.actor.instance == "charlie-alpha"


@pytest.mark.parametrize("change, reason", [
    ({"id": None}, "missing required field"),
    ({"status": "paused"}, "status: not one of"),
    ({"status": "running"}, "running session with ended_at"),
    ({"ended_at": None}, "completed session without ended_at"),
    ({"started_at": "yesterday"}, "not an ISO 8601 time"),
    ({"tokens_input": "lots"}, "ValueError"),
])
def test_broken_sessions_are_invalid(change, reason):
    with pytest.raises(InvalidRecord, match=reason):
        normalize("openclaw", "sessions", {**SESSION, **change}, CTX)


CRON = {"seq": 42, "id": "cev_1", "job": "db-backup", "host": "db-01", "event": "failed", "run_id": "r1",
        "at": "2026-11-20T02:31:07Z", "duration_ms": 1_867_000, "exit_code": 1,
        "message": "pg_dump: error: connection to server lost"}


def test_cron_events_belong_to_their_run_and_name_no_key():
    [event] = normalize("cron", "events", CRON, CTX)
    assert (event.id, event.type) == ("cron:run:r1:failed", "cron.job.failed")
    assert event.parent_event_id == "cron:run:r1:started" and event.keys == ()
    assert event.actor.id == "cron:db-backup" and event.actor.type == "bot"
    assert event.payload["exit_code"] == 1 and event.payload["seq"] == 42 and event.tags == ("db-backup", "db-01")
    [started] = normalize("cron", "events", {**CRON, "event": "started", "duration_ms": None}, CTX)
    assert started.id == "cron:run:r1:started" and started.parent_event_id is None
    with pytest.raises(InvalidRecord, match="event: not one of"):
        normalize("cron", "events", {**CRON, "event": "exploded"}, CTX)
    with pytest.raises(InvalidRecord, match="missing required field"):
        normalize("cron", "events", {k: v for k, v in CRON.items() if k != "id"}, CTX)


OPPORTUNITY = {"id": "opp_1", "market": "kalshi", "city": "New York", "contract": "KXHIGHNY-26NOV20-B52.5",
               "forecast_high_f": 53.4, "market_implied_high_f": 50.1, "edge_pct": 12.5, "confidence": 0.81,
               "suggested_stake_usd": 88.2, "status": "open", "detected_at": "2026-11-20T09:15:30Z",
               "updated_at": "2026-11-20T09:15:30Z"}


def test_weather_opportunity_is_one_detected_event():
    [event] = normalize("weather", "opportunities", OPPORTUNITY, CTX)
    assert (event.id, event.type) == ("weather:opportunity:opp_1", "weather.opportunity.detected")
    assert event.keys == () and event.actor.type == "bot"
    assert event.payload["edge_pct"] == 12.5 and event.payload["suggested_stake_usd"] == 88.2
    assert event.target.title == "New York KXHIGHNY-26NOV20-B52.5"


def test_raw_tables_flatten_the_new_sources():
    sessions = RAW_TABLES["openclaw", "sessions"].flatten(SESSION)
    assert sessions["cost_usd"] == 2.787 and sessions["pr_number"] == 12 and sessions["ended_at"].minute == 42
    assert RAW_TABLES["openclaw", "sessions"].flatten({**SESSION, "cost_usd": "1.5"})["cost_usd"] == 1.5
    cron = RAW_TABLES["cron", "events"].flatten(CRON)
    assert cron["run_event"] == "failed" and cron["occurred_at"].hour == 2 and cron["seq"] == 42
    weather = RAW_TABLES["weather", "opportunities"].flatten(OPPORTUNITY)
    assert isinstance(weather["forecast_high_f"], float) and weather["status"] == "open"
    with pytest.raises(InvalidRecord, match="missing required field"):
        RAW_TABLES["cron", "events"].flatten({**CRON, "run_id": None})
    with pytest.raises(InvalidRecord, match="cannot read"):
        RAW_TABLES["weather", "opportunities"].flatten({**OPPORTUNITY, "edge_pct": "high"})
    assert {("openclaw", "sessions"), ("cron", "events"), ("weather", "opportunities")} <= set(NORMALIZERS)


def test_normalizing_the_sandbox_records_gives_the_sandbox_truth():
    """Ids, types, times and keys of every generated record agree with `truth_agents`."""
    org = generate(7, 1500, 5, "2026-11-20T12:00:00Z")
    agents = generate_agents(org)
    truth = truth_mod.build_agents(agents, truth_mod.build(org))
    ctx = NormalizeContext.build(
        [{"key": t.key} for t in org.teams],
        [{"id": i.id, "name": i.name, "github_login": i.github.login, "linear_user_id": i.linear.id}
         for i in org.instances])
    got, keys = {}, {}
    for entity, records in (("sessions", map(session_record, agents.sessions)),
                            ("events", map(cron_record, agents.cron_events)),
                            ("opportunities", map(opportunity_record, agents.opportunities))):
        source = {"sessions": "openclaw", "events": "cron", "opportunities": "weather"}[entity]
        for record in records:
            for event in normalize(source, entity, record, ctx):
                got[event.id] = (event.type, int(event.timestamp.replace(tzinfo=UTC).timestamp()))
                keys[event.id] = {k.key for k in event.keys}
                if source == "openclaw":
                    assert event.actor.type == ("charlie" if record["instance_id"] else "bot")
    assert got == {e: (t, at) for e, t, at in zip(truth.event_id, truth.event_type, truth.event_at, strict=True)}
    expected_keys = {}
    for s in agents.sessions:
        for suffix in ("started", "ended"):
            expected_keys[f"openclaw:session:{s.id}:{suffix}"] = set(truth_mod.session_keys(s))
    assert {e: k for e, k in keys.items() if e.startswith("openclaw:")} == {
        e: k for e, k in expected_keys.items() if e in keys}
    assert any(keys.values())
