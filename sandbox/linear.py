"""Linear's GraphQL API over the world, executed by graphql-core against a subset of Linear's schema.

Connections paginate Relay style (`first`/`after`, `pageInfo`), newest first like Linear, with
`createdAt` (default) or `updatedAt` ordering. Issues are indexed by both times so a filtered page
is a bisect away whatever the size of the world.
"""

from __future__ import annotations

import base64
import json
import math
import operator
import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    StringValueNode,
    build_schema,
    execute,
    parse,
    validate,
)

from sandbox.model import LinearIssue, Org, iso_ms

SDL = """
scalar DateTime
enum PaginationOrderBy { createdAt updatedAt }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }
type Organization { id: ID! name: String! urlKey: String! }
type User { id: ID! name: String! displayName: String! email: String! active: Boolean! createdAt: DateTime! }
type UserEdge { node: User! cursor: String! }
type UserConnection { nodes: [User!]! edges: [UserEdge!]! pageInfo: PageInfo! }
type WorkflowState { id: ID! name: String! type: String! color: String! position: Float! team: Team! }
type WorkflowStateEdge { node: WorkflowState! cursor: String! }
type WorkflowStateConnection { nodes: [WorkflowState!]! edges: [WorkflowStateEdge!]! pageInfo: PageInfo! }
type Team {
  id: ID! key: String! name: String! createdAt: DateTime!
  states(first: Int, after: String): WorkflowStateConnection!
}
type TeamEdge { node: Team! cursor: String! }
type TeamConnection { nodes: [Team!]! edges: [TeamEdge!]! pageInfo: PageInfo! }
type IssueLabel { id: ID! name: String! color: String! }
type IssueLabelEdge { node: IssueLabel! cursor: String! }
type IssueLabelConnection { nodes: [IssueLabel!]! edges: [IssueLabelEdge!]! pageInfo: PageInfo! }
type IssueHistory {
  id: ID! createdAt: DateTime! updatedAt: DateTime! actor: User
  fromState: WorkflowState toState: WorkflowState
}
type IssueHistoryEdge { node: IssueHistory! cursor: String! }
type IssueHistoryConnection { nodes: [IssueHistory!]! edges: [IssueHistoryEdge!]! pageInfo: PageInfo! }
type Issue {
  id: ID! identifier: String! number: Float! title: String! description: String
  priority: Float! priorityLabel: String! estimate: Float url: String! branchName: String!
  createdAt: DateTime! updatedAt: DateTime! startedAt: DateTime completedAt: DateTime canceledAt: DateTime
  archivedAt: DateTime team: Team! state: WorkflowState! assignee: User creator: User
  labels(first: Int, after: String): IssueLabelConnection!
  history(first: Int, after: String): IssueHistoryConnection!
  comments(first: Int, after: String): CommentConnection!
  cycle: Cycle
}
type IssueEdge { node: Issue! cursor: String! }
type IssueConnection { nodes: [Issue!]! edges: [IssueEdge!]! pageInfo: PageInfo! }
type Comment {
  id: ID! body: String! url: String! createdAt: DateTime! updatedAt: DateTime! editedAt: DateTime
  user: User issue: Issue!
}
type CommentEdge { node: Comment! cursor: String! }
type CommentConnection { nodes: [Comment!]! edges: [CommentEdge!]! pageInfo: PageInfo! }
type Cycle {
  id: ID! number: Float! name: String startsAt: DateTime! endsAt: DateTime! completedAt: DateTime
  createdAt: DateTime! updatedAt: DateTime! progress: Float! team: Team!
  issues(first: Int, after: String): IssueConnection!
}
type CycleEdge { node: Cycle! cursor: String! }
type CycleConnection { nodes: [Cycle!]! edges: [CycleEdge!]! pageInfo: PageInfo! }
input DateComparator { eq: DateTime neq: DateTime gt: DateTime gte: DateTime lt: DateTime lte: DateTime }
input StringComparator { eq: String neq: String in: [String!] nin: [String!] }
input IDComparator { eq: ID neq: ID in: [ID!] nin: [ID!] }
input TeamFilter { id: IDComparator key: StringComparator }
input WorkflowStateFilter { name: StringComparator type: StringComparator }
input NumberComparator { eq: Float neq: Float gt: Float gte: Float lt: Float lte: Float }
input IssueFilter {
  createdAt: DateComparator updatedAt: DateComparator team: TeamFilter state: WorkflowStateFilter
}
input CommentFilter { createdAt: DateComparator updatedAt: DateComparator }
input CycleFilter {
  createdAt: DateComparator updatedAt: DateComparator startsAt: DateComparator endsAt: DateComparator
  number: NumberComparator team: TeamFilter
}
type Query {
  organization: Organization!
  viewer: User!
  teams(first: Int, after: String, last: Int, before: String, orderBy: PaginationOrderBy,
        includeArchived: Boolean): TeamConnection!
  users(first: Int, after: String, last: Int, before: String, orderBy: PaginationOrderBy,
        includeArchived: Boolean): UserConnection!
  issues(first: Int, after: String, last: Int, before: String, filter: IssueFilter,
         orderBy: PaginationOrderBy, includeArchived: Boolean): IssueConnection!
  issue(id: String!): Issue!
  team(id: String!): Team!
  comments(first: Int, after: String, last: Int, before: String, filter: CommentFilter,
           orderBy: PaginationOrderBy, includeArchived: Boolean): CommentConnection!
  cycles(first: Int, after: String, last: Int, before: String, filter: CycleFilter,
         orderBy: PaginationOrderBy, includeArchived: Boolean): CycleConnection!
}
"""

MAX_FIRST = 250
_PRIORITY_LABELS = ("No priority", "Urgent", "High", "Medium", "Low")
_CONNECTIONS = {"issues", "teams", "users", "history", "labels", "states", "comments", "cycles"}


class UserInputError(GraphQLError):
    def __init__(self, message: str) -> None:
        extensions = {"code": "INVALID_INPUT", "type": "invalid input", "userError": True,
                      "userPresentableMessage": message}
        super().__init__(message, extensions=extensions)


def _parse_time(value: Any) -> float:
    if not isinstance(value, str):
        raise TypeError("DateTime must be an ISO 8601 string")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _parse_time_literal(node: Any, _variables: Any = None) -> float:
    if not isinstance(node, StringValueNode):
        raise TypeError("DateTime must be an ISO 8601 string")
    return _parse_time(node.value)


def _encode(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def _decode(cursor: str) -> list:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise UserInputError("Invalid cursor") from exc


def _first(first: int | None) -> int:
    first = 50 if first is None else first
    if not 1 <= first <= MAX_FIRST:
        raise UserInputError(f"first must be between 1 and {MAX_FIRST}")
    return first


def _connection(nodes: list, cursors: list[str], has_next: bool) -> dict:
    return {
        "nodes": nodes,
        "edges": [{"node": n, "cursor": c} for n, c in zip(nodes, cursors, strict=True)],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": False,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def _small_connection(items: Sequence, first: int | None = None, after: str | None = None, **_: Any) -> dict:
    """A short list (teams, users, history): position cursors."""
    first = _first(first)
    start = int(_decode(after)[0]) + 1 if after else 0
    chunk = list(items[start : start + first])
    return _connection(chunk, [_encode(start + i) for i in range(len(chunk))], start + first < len(items))


def _branch_name(issue: LinearIssue) -> str:
    """What Linear's "copy git branch name" gives: `alice/eng-12`."""
    return f"{issue.assignee.display_name if issue.assignee else 'acme'}/{issue.slug}"


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


_ATTRS: dict[str, str] = {}


def _field(source: Any, info: Any, **_: Any) -> Any:
    """Default resolver: dict keys, else the snake_case attribute of a model record."""
    name = info.field_name
    if isinstance(source, dict):
        return source.get(name)
    attr = _ATTRS.get(name) or _ATTRS.setdefault(name, _snake(name))
    return getattr(source, attr, None)


def _js_numbers(value: Any) -> Any:
    """Integral floats as ints, as Linear's JavaScript server prints them (`"priority": 2`)."""
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class LinearApi:
    def __init__(self, org: Org) -> None:
        self.org = org
        self.schema = build_schema(SDL)
        dt = self.schema.type_map["DateTime"]
        dt.serialize, dt.parse_value, dt.parse_literal = iso_ms, _parse_time, _parse_time_literal
        self.teams = sorted(org.teams, key=lambda t: (-t.created_at, t.id))
        self.users = sorted(org.linear_users, key=lambda u: (-u.created_at, u.id))
        self.issues = {i.id: i for i in org.linear_issues}
        self.by_identifier = {i.identifier: i for i in org.linear_issues}
        # Ascending (time, id) per ordering; pages are read from the end, newest first.
        self.index = {
            field: sorted(((getattr(i, field), i.id), i) for i in org.linear_issues)
            for field in ("created_at", "updated_at")
        }
        self.keys = {field: [k for k, _ in rows] for field, rows in self.index.items()}
        comments = [c for i in org.linear_issues for c in i.comments]
        self.comment_index = {
            field: sorted(((getattr(c, field), c.id), c) for c in comments) for field in ("created_at", "updated_at")
        }
        self.comment_keys = {field: [k for k, _ in rows] for field, rows in self.comment_index.items()}
        self.cycles = sorted(org.cycles, key=lambda c: (-c.created_at, c.id))
        self.cycle_issues: dict[str, list[LinearIssue]] = {}
        for issue in sorted(org.linear_issues, key=lambda i: (-i.created_at, i.id)):
            if issue.cycle is not None:
                self.cycle_issues.setdefault(issue.cycle.id, []).append(issue)
        self._resolvers({
            ("Query", "organization"): lambda *_: {"id": "org-acme", "name": "Acme", "urlKey": "acme"},
            ("Query", "viewer"): lambda *_: org.humans[0].linear,
            ("Query", "teams"): lambda _s, _i, **kw: _small_connection(self.teams, **kw),
            ("Query", "users"): lambda _s, _i, **kw: _small_connection(self.users, **kw),
            ("Query", "issues"): lambda _s, _i, **kw: self._issues(**kw),
            ("Query", "issue"): lambda _s, _i, id: self._issue(id),
            ("Query", "team"): lambda _s, _i, id: self._team(id),
            ("Team", "states"): lambda t, _i, **kw: _small_connection(list(t.states.values()), **kw),
            ("Issue", "priorityLabel"): lambda i, _i: _PRIORITY_LABELS[i.priority],
            ("Issue", "branchName"): lambda i, _i: _branch_name(i),
            ("Issue", "labels"): lambda i, _i, **kw: _small_connection(i.labels, **kw),
            ("Issue", "history"): lambda i, _i, **kw: _small_connection(i.history[::-1], **kw),  # newest 1st
            ("IssueHistory", "updatedAt"): lambda h, _i: h.created_at,
            ("Issue", "comments"): lambda i, _i, **kw: _small_connection(i.comments, **kw),
            ("Query", "comments"): lambda _s, _i, **kw: self._comments(**kw),
            ("Query", "cycles"): lambda _s, _i, **kw: self._cycles(**kw),
            ("Comment", "url"): lambda c, _i: f"{c.issue.url}#comment-{c.id[:8]}",
            ("Comment", "editedAt"): lambda c, _i: c.updated_at if c.updated_at != c.created_at else None,
            ("Cycle", "issues"): lambda c, _i, **kw: _small_connection(self.cycle_issues.get(c.id, []), **kw),
            ("Cycle", "progress"): lambda c, _i: self._progress(c),
        })

    def _resolvers(self, table: dict[tuple[str, str], Callable]) -> None:
        for (type_name, field_name), fn in table.items():
            self.schema.type_map[type_name].fields[field_name].resolve = fn

    # ---- queries -------------------------------------------------------------------------------------
    def _issue(self, key: str) -> LinearIssue:
        if (issue := self.issues.get(key) or self.by_identifier.get(key.upper())) is None:
            raise GraphQLError("Entity not found: Issue", extensions={"code": "ENTITY_NOT_FOUND"})
        return issue

    def _team(self, key: str):
        for team in self.teams:
            if key in (team.id, team.key):
                return team
        raise GraphQLError("Entity not found: Team", extensions={"code": "ENTITY_NOT_FOUND"})

    def _issues(self, first: int | None = None, after: str | None = None, last: int | None = None,
                before: str | None = None, filter: dict | None = None, orderBy: str | None = None,
                **_: Any) -> dict:
        tests = []
        for name, comparator in (filter or {}).items():
            comparator = {k: v for k, v in (comparator or {}).items() if v is not None}
            if name == "team":
                tests.extend(_string_tests(lambda i: i.team.key, comparator.get("key")))
                tests.extend(_string_tests(lambda i: i.team.id, comparator.get("id")))
            elif name == "state":
                tests.extend(_string_tests(lambda i: i.state.type, comparator.get("type")))
                tests.extend(_string_tests(lambda i: i.state.name, comparator.get("name")))
        return _timed(self.index, self.keys, first, after, last, before, filter, orderBy, tests)

    def _comments(self, first: int | None = None, after: str | None = None, last: int | None = None,
                  before: str | None = None, filter: dict | None = None, orderBy: str | None = None,
                  **_: Any) -> dict:
        return _timed(self.comment_index, self.comment_keys, first, after, last, before, filter, orderBy, [])

    def _cycles(self, first: int | None = None, after: str | None = None, last: int | None = None,
                before: str | None = None, filter: dict | None = None, **_: Any) -> dict:
        """A short list per team: position cursors over the filtered cycles, newest first."""
        if last is not None or before is not None:
            raise UserInputError("This sandbox pages forward only: use first/after")
        tests = []
        for name, comparator in (filter or {}).items():
            comparator = {k: v for k, v in (comparator or {}).items() if v is not None}
            if name == "team":
                tests.extend(_string_tests(lambda c: c.team.key, comparator.get("key")))
                tests.extend(_string_tests(lambda c: c.team.id, comparator.get("id")))
            else:
                tests.extend(_time_tests(_snake(name), comparator))
        cycles = [c for c in self.cycles if all(test(c) for test in tests)]
        return _small_connection(cycles, first, after)

    def _progress(self, cycle: Any) -> float:
        issues = self.cycle_issues.get(cycle.id, [])
        done = sum(i.state.type in ("completed", "canceled") for i in issues)
        return round(done / len(issues), 4) if issues else 0.0


    # ---- HTTP ----------------------------------------------------------------------------------------
    def handle(self, body: bytes) -> tuple[int, dict, int]:
        """Status, response document and the query's complexity."""
        try:
            request = json.loads(body or b"null")
            query = request["query"]
            if not isinstance(query, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return 400, _errors("Body must be a JSON object with a `query` string", "BAD_USER_INPUT"), 0
        document, errors = _prepare(self.schema, query)
        if errors:
            return 400, {"errors": errors}, 0
        variables = request.get("variables") or {}
        # Every resolver is synchronous: skipping graphql-core's awaitable checks saves a quarter of a page.
        result = execute(self.schema, document, variable_values=variables,
                         operation_name=request.get("operationName"), field_resolver=_field,
                         is_awaitable=lambda _: False)
        out: dict[str, Any] = {"data": _js_numbers(result.data)}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return 200, out, complexity(document, variables)


def _timed(index: dict[str, list], all_keys: dict[str, list], first: int | None, after: str | None,
           last: int | None, before: str | None, filter: dict | None, orderBy: str | None,
           tests: list[Callable[[Any], bool]]) -> dict:
    """A connection over records indexed by `created_at` and `updated_at`: newest first in the ordering,
    `createdAt`/`updatedAt` comparators narrowed by bisection, `tests` for the rest of the filter."""
    if last is not None or before is not None:
        raise UserInputError("This sandbox pages forward only: use first/after")
    first, order = _first(first), orderBy or "createdAt"
    field = _snake(order)
    ranges, tests = {}, list(tests)
    for name, comparator in (filter or {}).items():
        comparator = {k: v for k, v in (comparator or {}).items() if v is not None}
        if name in ("createdAt", "updatedAt"):
            ranges[_snake(name)] = _narrow(all_keys[_snake(name)], comparator)
            tests.extend(_time_tests(_snake(name), comparator))
    # Walk the narrowest time range; when that is not the ordering's, re-sort just those candidates.
    everything = (field, (0, len(all_keys[field])))
    narrow, (lo, hi) = min(ranges.items(), key=lambda kv: kv[1][1] - kv[1][0], default=everything)
    if narrow == field:
        keys, rows = all_keys[field], index[field]
    else:
        rows = sorted(((getattr(i, field), i.id), i) for _, i in index[narrow][lo:hi])
        keys, lo, hi = [k for k, _ in rows], 0, len(rows)
    if after:
        cursor = _decode(after)
        if len(cursor) != 3 or cursor[0] != order:
            raise UserInputError("Invalid cursor for this ordering")
        hi = min(hi, bisect_left(keys, (cursor[1], cursor[2])))
    nodes: list = []
    i = hi - 1
    while i >= lo and len(nodes) <= first:
        record = rows[i][1]
        if all(test(record) for test in tests):
            nodes.append(record)
        i -= 1
    has_next = len(nodes) > first
    nodes = nodes[:first]
    return _connection(nodes, [_encode(order, getattr(n, field), n.id) for n in nodes], has_next)


@lru_cache(maxsize=256)
def _prepare(schema: Any, query: str) -> tuple[Any, list[dict]]:
    """Parsed and validated once per query text: clients send the same query page after page."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, [{**exc.formatted, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}]
    errors = validate(schema, document)
    return document, [{**e.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}} for e in errors]


def _errors(message: str, code: str) -> dict:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _narrow(keys: list[tuple[int, str]], comp: dict[str, float]) -> tuple[int, int]:
    """Bounds of the (time, id) keys a date comparator keeps; times are whole seconds."""
    lo, hi = 0, len(keys)
    for op, value in comp.items():
        if op in ("gte", "eq"):
            lo = max(lo, bisect_left(keys, (math.ceil(value),)))
        if op == "gt":
            lo = max(lo, bisect_left(keys, (math.floor(value) + 1,)))
        if op == "lt":
            hi = min(hi, bisect_left(keys, (math.ceil(value),)))
        if op in ("lte", "eq"):
            hi = min(hi, bisect_left(keys, (math.floor(value) + 1,)))
    return lo, hi


_OPS = {"eq": operator.eq, "neq": operator.ne, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt,
        "lte": operator.le}


def _time_tests(attr: str, comp: dict[str, float]) -> list[Callable[[LinearIssue], bool]]:
    return [lambda i, op=_OPS[name], v=v: op(getattr(i, attr), v) for name, v in comp.items()]


def _string_tests(get: Callable[[LinearIssue], str], comp: dict | None) -> list[Callable[..., bool]]:
    comp = comp or {}
    tests: list[Callable[[LinearIssue], bool]] = []
    if "eq" in comp:
        tests.append(lambda i: get(i) == comp["eq"])
    if "neq" in comp:
        tests.append(lambda i: get(i) != comp["neq"])
    if "in" in comp:
        tests.append(lambda i: get(i) in comp["in"])
    if "nin" in comp:
        tests.append(lambda i: get(i) not in comp["nin"])
    return tests


def complexity(document: Any, variables: dict) -> int:
    """Linear-style cost: 0.1 a scalar, 1 an object, connections multiply by their page size."""

    def size(node: FieldNode) -> int:
        for arg in node.arguments:
            if arg.name.value == "first":
                value = arg.value
                variable = value.kind == "variable"
                raw = variables.get(value.name.value) if variable else getattr(value, "value", None)
                return int(raw) if str(raw).isdigit() else 50
        return 50 if node.name.value in _CONNECTIONS else 1

    def cost(selections: Sequence, weight: float) -> float:
        total = 0.0
        for sel in selections:
            if isinstance(sel, InlineFragmentNode):
                total += cost(sel.selection_set.selections, weight)
            elif isinstance(sel, FieldNode):
                if sel.selection_set is None:
                    total += 0.1 * weight
                else:
                    total += weight + cost(sel.selection_set.selections, weight * size(sel))
        return total

    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    return max(1, round(sum(cost(d.selection_set.selections, 1) for d in operations)))
