"""Which events a delivery announces anew, and which it restates.

A delivery carries an object's whole current state: an `edited` pull request carries the PR, and
normalizing it yields the PR's `github.pr.opened` event again (same id: dbt keeps the latest copy,
counted once). Only the delivery whose action made an event happen announces it; every other one
carrying it restates it: `<entity>.updated`, with the delivery's action.
"""

from __future__ import annotations

# The delivery actions (GitHub's `action`, Linear's `action`) that make each kind of event happen,
# by the last part of its type (`github.pr.merged` -> `merged`). A kind not named here is new
# whenever it is first seen.
CREATED_BY: dict[str, frozenset[str]] = {
    "opened": frozenset({"opened", "reopened"}),
    "created": frozenset({"create", "created"}),
    "submitted": frozenset({"submitted"}),
    "merged": frozenset({"closed"}),
    "closed": frozenset({"closed"}),
    "completed": frozenset({"completed"}),
    "state_changed": frozenset({"update"}),
}


def restates(event_type: str, action: str | None) -> bool:
    """True when a delivery with `action` carries an event of `event_type` it did not make happen."""
    allowed = CREATED_BY.get(event_type.rsplit(".", 1)[-1])
    return action is not None and allowed is not None and action not in allowed


def updated_type(event_type: str) -> str:
    """`github.pr.opened` -> `github.pr.updated`: the message type of a restated event."""
    return event_type.rsplit(".", 1)[0] + ".updated"
