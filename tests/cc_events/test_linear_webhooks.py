"""Linear webhooks through the one normalizer: the events, ids and keys the poll gives the same
things, and what is stored raw or refused."""

import pytest

from cc_events import InvalidRecord, NormalizeContext, normalize
from cc_events.registry import normalize_delivery

CTX = NormalizeContext(linear_team_keys=frozenset({"ENG", "OPS"}))


def deliver(payload):
    return normalize_delivery("linear", payload["type"], payload, CTX)


def polled_issue(linear_webhooks, history):
    """The same issue as the poll's `issues` query returns it, with its history entries."""
    data = linear_webhooks.issue_data()
    return {**{k: data[k] for k in ("id", "identifier", "number", "title", "priority", "url", "createdAt",
                                    "updatedAt", "team", "state", "assignee")},
            "creator": {"id": "user-ann", "name": "Ann Lee"}, "history": {"nodes": history}}


def test_a_state_change_is_the_polls_event_under_its_own_id(linear_webhooks):
    [pushed] = deliver(linear_webhooks.state_changed())
    assert pushed.id == "linear:issue:lin-42:state_changed:1767609000000"  # updatedAt, epoch ms
    assert pushed.type == "linear.issue.state_changed"
    assert pushed.timestamp.isoformat() == "2026-01-05T10:30:00"
    assert pushed.payload == {"identifier": "ENG-42", "from": None, "to": "In Progress", "to_type": "started"}
    assert pushed.actor.id == "linear:user-ann" and pushed.actor.name == "Ann Lee"

    history = [{"id": "h-1", "createdAt": "2026-01-05T10:30:00.120Z", "actor": {"id": "user-ann", "name": "Ann Lee"},
                "fromState": {"name": "Todo", "type": "unstarted"}, "toState": {"name": "In Progress", "type": "started"}}]
    _, polled = normalize("linear", "issues", polled_issue(linear_webhooks, history), CTX)
    assert polled.id == "linear:history:h-1"
    # Everything but the id and what only one side knows (the old state's name) is the same event.
    assert (pushed.type, pushed.target, pushed.keys, pushed.actor, pushed.parent_event_id, pushed.tags) == \
        (polled.type, polled.target, polled.keys, polled.actor, polled.parent_event_id, polled.tags)
    assert [k.key for k in pushed.keys] == ["linear:ENG-42"]
    assert polled.payload == {**pushed.payload, "from": "Todo"}


def test_an_update_that_moves_nothing_and_a_remove_are_no_event(linear_webhooks):
    assert deliver(linear_webhooks.reassigned()) == []  # the poll has no assignee event either
    assert deliver(linear_webhooks.issue_removed()) == []
    assert deliver(linear_webhooks.comment_created(action="remove")) == []
    assert deliver(linear_webhooks.comment_created(action="update")) == []


def test_an_integrations_move_has_no_user_actor(linear_webhooks):
    payload = {**linear_webhooks.state_changed(), "actor": {"id": "oauth-1", "name": "GitHub", "type": "OauthClient"}}
    [event] = deliver(payload)
    assert event.actor.id == "linear:system" and event.actor.type == "bot"


def test_the_created_issue_is_the_polls_created_event(linear_webhooks):
    [created] = deliver(linear_webhooks.issue_created())
    [polled] = normalize("linear", "issues", polled_issue(linear_webhooks, []), CTX)
    assert created == polled


def test_a_comment_is_the_polls_comment_event(linear_webhooks):
    [pushed] = deliver(linear_webhooks.comment_created())
    polled_record = {"id": "cmt-7", "body": "Reproduced on staging, see OPS-3.", "createdAt": "2026-01-05T10:35:00.000Z",
                     "updatedAt": "2026-01-05T10:35:00.000Z", "user": {"id": "user-ann", "name": "Ann Lee"},
                     "issue": {"id": "lin-42", "identifier": "ENG-42"}}
    [polled] = normalize("linear", "comments", polled_record, CTX)
    assert pushed == polled
    assert pushed.id == "linear:comment:cmt-7" and pushed.type == "linear.comment.created"
    assert [k.key for k in pushed.keys] == ["linear:ENG-42"]  # OPS-3 in the text is a mention, not a link
    assert pushed.parent_event_id == "linear:issue:lin-42:created"


def test_an_older_comment_payload_names_its_issue_by_url(linear_webhooks):
    payload = linear_webhooks.comment_created(identifier=None)
    assert "issue" not in payload["data"]
    [event] = deliver(payload)
    assert [k.key for k in event.keys] == ["linear:ENG-42"]
    assert event.parent_event_id == "linear:issue:lin-42:created"


def test_a_comment_on_a_project_update_is_stored_raw(linear_webhooks):
    payload = linear_webhooks.comment_created()
    data = {k: v for k, v in payload["data"].items() if k not in ("issue", "issueId")}
    assert deliver({**payload, "data": {**data, "projectUpdateId": "pu-1"}}) == []


@pytest.mark.parametrize("change, reason", [
    (lambda p: {**p, "data": {**p["data"], "state": None}}, "no `state` object"),
    (lambda p: {**p, "data": {**p["data"], "updatedAt": "soon"}, "createdAt": None}, "not an ISO 8601 time"),
    (lambda p: {**p, "data": {k: v for k, v in p["data"].items() if k != "identifier"}}, "identifier"),
])
def test_a_state_change_the_normalizer_cannot_use_says_why(linear_webhooks, change, reason):
    with pytest.raises(InvalidRecord, match=reason):
        deliver(change(linear_webhooks.state_changed()))
