"""The rooms a client can join: the fixed ones and `workflows:<workflow id>`."""

from __future__ import annotations

import re

ALL_WORKFLOWS = "workflows:all"  # every workflow's `workflow.updated`, as `/api/workflows` lists them
ROOMS = ("dashboard:overview", "metrics:realtime", "alerts:all", "events:all", ALL_WORKFLOWS)
# `workflows:<workflow id>`. No `*`: a room is one name a publisher sends to, never a pattern, so
# `workflows:*` would be joined and then sent nothing (no workflow id has a `*`).
_WORKFLOW_ROOM = re.compile(r"^workflows:[^*]{1,200}$")
