"""The subset of GitHub's GraphQL schema (v4) the sandbox serves: GitHub's own type, field, argument
and enum names (from the published schema, github.com/octokit/graphql-schema), for repositories,
pull requests with their reviews, commits, labels and checks, users and bots, and `rateLimit`.

GitHub's `Int` is wider than the GraphQL spec's 32 bits where ids outgrew it (a check run's
`databaseId` is an 11-digit number on github.com): `wide_database_ids` gives those fields an `Int`
that serializes such values, as GitHub's server does. Below the schema, what its resolvers share:
Relay connections over lists (opaque position cursors), times as GitHub prints them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from graphql import GraphQLError, GraphQLInt, GraphQLScalarType, get_named_type, validate_schema

from sandbox.model import iso

SDL = """
scalar DateTime
scalar GitTimestamp
scalar GitObjectID
scalar URI
scalar BigInt

enum OrderDirection { ASC DESC }
enum IssueOrderField { COMMENTS CREATED_AT UPDATED_AT }
input IssueOrder { direction: OrderDirection! field: IssueOrderField! }
enum PullRequestState { CLOSED MERGED OPEN }
enum PullRequestReviewState { APPROVED CHANGES_REQUESTED COMMENTED DISMISSED PENDING }
enum CommentAuthorAssociation {
  COLLABORATOR CONTRIBUTOR FIRST_TIMER FIRST_TIME_CONTRIBUTOR MANNEQUIN MEMBER NONE OWNER
}
enum CheckStatusState { COMPLETED IN_PROGRESS PENDING QUEUED REQUESTED WAITING }
enum CheckConclusionState {
  ACTION_REQUIRED CANCELLED FAILURE NEUTRAL SKIPPED STALE STARTUP_FAILURE SUCCESS TIMED_OUT
}
enum CheckRunType { ALL LATEST }
enum StatusState { ERROR EXPECTED FAILURE PENDING SUCCESS }
input CheckRunFilter {
  appId: Int checkName: String checkType: CheckRunType conclusions: [CheckConclusionState!]
  status: CheckStatusState statuses: [CheckStatusState!]
}
input CheckSuiteFilter { appId: Int checkName: String }

interface Node { id: ID! }
interface Actor { avatarUrl(size: Int): URI! login: String! resourcePath: URI! url: URI! }
interface RepositoryOwner { avatarUrl(size: Int): URI! id: ID! login: String! resourcePath: URI! url: URI! }
interface GitObject {
  abbreviatedOid: String! commitResourcePath: URI! commitUrl: URI! id: ID! oid: GitObjectID! repository: Repository!
}

type PageInfo { endCursor: String hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String }
type RateLimit { cost: Int! limit: Int! nodeCount: Int! remaining: Int! resetAt: DateTime! used: Int! }

type User implements Actor & Node & RepositoryOwner {
  avatarUrl(size: Int): URI! databaseId: Int email: String! id: ID! login: String! name: String
  resourcePath: URI! url: URI!
}
type Bot implements Actor & Node {
  avatarUrl(size: Int): URI! databaseId: Int id: ID! login: String! resourcePath: URI! url: URI!
}
type Organization implements Actor & Node & RepositoryOwner {
  avatarUrl(size: Int): URI! databaseId: Int id: ID! login: String! name: String resourcePath: URI! url: URI!
}
type App implements Node { databaseId: Int description: String id: ID! name: String! slug: String! url: URI! }

type Ref implements Node { id: ID! name: String! prefix: String! repository: Repository! target: GitObject }
type Repository implements Node {
  createdAt: DateTime! databaseId: Int defaultBranchRef: Ref description: String id: ID! isPrivate: Boolean!
  name: String! nameWithOwner: String! owner: RepositoryOwner! pushedAt: DateTime updatedAt: DateTime! url: URI!
  object(expression: String, oid: GitObjectID): GitObject
  pullRequest(number: Int!): PullRequest
  pullRequests(after: String, baseRefName: String, before: String, first: Int, headRefName: String,
               labels: [String!], last: Int, orderBy: IssueOrder, states: [PullRequestState!]): PullRequestConnection!
}

type Label implements Node { color: String! description: String id: ID! isDefault: Boolean! name: String! url: URI! }
type LabelEdge { cursor: String! node: Label }
type LabelConnection { edges: [LabelEdge] nodes: [Label] pageInfo: PageInfo! totalCount: Int! }

type PullRequest implements Node {
  additions: Int! author: Actor authorAssociation: CommentAuthorAssociation! baseRefName: String!
  baseRefOid: GitObjectID! body: String! changedFiles: Int! closed: Boolean! closedAt: DateTime
  commits(after: String, before: String, first: Int, last: Int): PullRequestCommitConnection!
  createdAt: DateTime! databaseId: Int deletions: Int! fullDatabaseId: BigInt headRefName: String!
  headRefOid: GitObjectID! id: ID! isDraft: Boolean!
  labels(after: String, before: String, first: Int, last: Int): LabelConnection
  locked: Boolean! mergeCommit: Commit merged: Boolean! mergedAt: DateTime mergedBy: Actor number: Int!
  permalink: URI! repository: Repository! resourcePath: URI!
  reviews(after: String, author: String, before: String, first: Int, last: Int,
          states: [PullRequestReviewState!]): PullRequestReviewConnection
  state: PullRequestState! title: String! updatedAt: DateTime! url: URI!
}
type PullRequestEdge { cursor: String! node: PullRequest }
type PullRequestConnection { edges: [PullRequestEdge] nodes: [PullRequest] pageInfo: PageInfo! totalCount: Int! }

type PullRequestReview implements Node {
  author: Actor authorAssociation: CommentAuthorAssociation! body: String! commit: Commit createdAt: DateTime!
  databaseId: Int fullDatabaseId: BigInt id: ID! publishedAt: DateTime pullRequest: PullRequest!
  repository: Repository! resourcePath: URI! state: PullRequestReviewState! submittedAt: DateTime
  updatedAt: DateTime! url: URI!
}
type PullRequestReviewEdge { cursor: String! node: PullRequestReview }
type PullRequestReviewConnection {
  edges: [PullRequestReviewEdge] nodes: [PullRequestReview] pageInfo: PageInfo! totalCount: Int!
}

type GitActor { avatarUrl(size: Int): URI! date: GitTimestamp email: String name: String user: User }
type Commit implements GitObject & Node {
  abbreviatedOid: String! author: GitActor authoredDate: DateTime!
  checkSuites(after: String, before: String, filterBy: CheckSuiteFilter, first: Int, last: Int): CheckSuiteConnection
  commitResourcePath: URI! commitUrl: URI! committedDate: DateTime! committer: GitActor id: ID! message: String!
  messageBody: String! messageHeadline: String! oid: GitObjectID! repository: Repository! resourcePath: URI!
  statusCheckRollup: StatusCheckRollup url: URI!
}
type PullRequestCommit implements Node {
  commit: Commit! id: ID! pullRequest: PullRequest! resourcePath: URI! url: URI!
}
type PullRequestCommitEdge { cursor: String! node: PullRequestCommit }
type PullRequestCommitConnection {
  edges: [PullRequestCommitEdge] nodes: [PullRequestCommit] pageInfo: PageInfo! totalCount: Int!
}

type WorkflowRun implements Node {
  checkSuite: CheckSuite! createdAt: DateTime! databaseId: Int event: String! id: ID! resourcePath: URI!
  runNumber: Int! updatedAt: DateTime! url: URI!
}
type CheckSuite implements Node {
  app: App branch: Ref
  checkRuns(after: String, before: String, filterBy: CheckRunFilter, first: Int, last: Int): CheckRunConnection
  commit: Commit! conclusion: CheckConclusionState createdAt: DateTime! databaseId: Int id: ID!
  repository: Repository! resourcePath: URI! status: CheckStatusState! updatedAt: DateTime! url: URI!
  workflowRun: WorkflowRun
}
type CheckSuiteEdge { cursor: String! node: CheckSuite }
type CheckSuiteConnection { edges: [CheckSuiteEdge] nodes: [CheckSuite] pageInfo: PageInfo! totalCount: Int! }
type CheckRun implements Node {
  checkSuite: CheckSuite! completedAt: DateTime conclusion: CheckConclusionState databaseId: Int detailsUrl: URI
  externalId: String id: ID! name: String! permalink: URI! repository: Repository! resourcePath: URI!
  startedAt: DateTime status: CheckStatusState! summary: String text: String title: String url: URI!
}
type CheckRunEdge { cursor: String! node: CheckRun }
type CheckRunConnection { edges: [CheckRunEdge] nodes: [CheckRun] pageInfo: PageInfo! totalCount: Int! }

type StatusContext implements Node {
  context: String! createdAt: DateTime! description: String id: ID! state: StatusState! targetUrl: URI
}
union StatusCheckRollupContext = CheckRun | StatusContext
type StatusCheckRollupContextEdge { cursor: String! node: StatusCheckRollupContext }
type StatusCheckRollupContextConnection {
  edges: [StatusCheckRollupContextEdge] nodes: [StatusCheckRollupContext] pageInfo: PageInfo! totalCount: Int!
}
type StatusCheckRollup implements Node {
  commit: Commit contexts(after: String, before: String, first: Int, last: Int): StatusCheckRollupContextConnection!
  id: ID! state: StatusState!
}

type Query {
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  rateLimit: RateLimit
  repository(followRenames: Boolean = true, name: String!, owner: String!): Repository
  viewer: User!
}
"""


def _wide_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GraphQLError(f"Int cannot represent non-integer value: {value!r}")
    return value


def wide_database_ids(schema: Any) -> None:
    """Give every `databaseId` an `Int` that serializes 64-bit values (validated first, since the
    schema then holds two types named Int)."""
    validate_schema(schema)
    wide = GraphQLScalarType("WideInt", serialize=_wide_int, parse_value=GraphQLInt.parse_value,
                             parse_literal=GraphQLInt.parse_literal)
    wide.name = "Int"  # graphql-core refuses to build a second `Int`; renamed, it prints as GitHub's
    for kind in schema.type_map.values():
        found = getattr(kind, "fields", None)
        database_id = found.get("databaseId") if isinstance(found, dict) else None
        if database_id is not None and get_named_type(database_id.type) is GraphQLInt:
            database_id.type = wide


def _encode(index: int) -> str:
    return base64.b64encode(f"cursor:v2:{index}".encode()).decode()


def _decode(cursor: str) -> int:
    try:
        text = base64.b64decode(cursor, validate=True).decode()
        if text.startswith("cursor:v2:"):
            return int(text[len("cursor:v2:"):])
    except ValueError:
        pass
    raise GraphQLError(f"`{cursor}` does not appear to be a valid cursor.",
                       extensions={"type": "INVALID_CURSOR_ARGUMENTS"})


def connection(items: Sequence, first: int | None = None, after: str | None = None, last: int | None = None,
               before: str | None = None, **_: Any) -> dict:
    """A Relay connection over `items` (first/after forward, last/before backward)."""
    start = _decode(after) + 1 if after else 0
    end = min(len(items), _decode(before)) if before else len(items)
    span = range(start, max(start, end))
    chosen = span[:first] if first is not None else span[-last:] if last else span[0:0]
    nodes = [items[i] for i in chosen]
    cursors = [_encode(i) for i in chosen]
    return {
        "nodes": nodes, "edges": [{"node": n, "cursor": c} for n, c in zip(nodes, cursors, strict=True)],
        "totalCount": len(items),
        "pageInfo": {"hasNextPage": bool(chosen) and chosen[-1] + 1 < end,
                     "hasPreviousPage": bool(chosen) and chosen[0] > 0,
                     "startCursor": cursors[0] if cursors else None, "endCursor": cursors[-1] if cursors else None},
    }


class Newest(Sequence):
    """An ascending list read from its end, without copying it."""

    def __init__(self, items: Sequence) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):  # type: ignore[override]
        return self.items[len(self.items) - 1 - i]


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def resolve_field(source: Any, info: Any, **_: Any) -> Any:
    """Default resolver: dict keys, else the snake_case attribute of a world record."""
    if isinstance(source, dict):
        return source.get(info.field_name)
    return getattr(source, _snake(info.field_name), None)


def serialize_time(value: Any) -> str | None:
    return iso(value) if isinstance(value, int) else value


def parse_time(value: Any) -> int:
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
