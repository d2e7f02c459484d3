"""GitHub GraphQL (v4) for pull requests and what hangs off them: reviews, commits and check runs.

Over REST each pull request costs a request for its reviews, one for its commits and one for its
head commit's check runs. Here one query asks for up to `batch_size` (50) pull requests' reviews,
commits or head-commit checks at once, by number and commit id: the very pull requests the lake
holds, so the same records land as over REST. A pull request with more than a page of any of them
(`nested_page_size`, 100) gets follow-up queries for that connection alone. Pull requests
themselves are listed newest update first, as over REST.

Every query asks for `rateLimit` and the client paces itself by GitHub's point budget (5,000 an
hour per user): when the points left would not pay for the next query (its last known cost), it
waits until `resetAt`; a query refused all the same (`RATE_LIMITED`, another client spent the
budget) waits for the reset in `x-ratelimit-reset` and is sent again. Nothing is skipped.

Records come out in the REST shapes (`user.login`, `head.sha`, `commit.author.date`, lower-case
states), carrying the fields the raw tables and the normalizers read, so both APIs land the same
rows; GraphQL has fewer of the REST fields, so `_raw` holds less. A bot's `login` gets back its
`[bot]` suffix, and a bot's commit, whose GraphQL author `user` is null (it is no `User`), is
credited from its `<id>+<login>[bot]@users.noreply.github.com` address as REST credits it.

What stays on REST (inherited from `GitHubClient`), and why:
  - issues and default-branch commits: a page holds 100 either way, and a REST page that has not
    changed answers 304 from its ETag and costs nothing, where a GraphQL query always costs points;
  - GitHub Actions workflow runs: GraphQL has no listing of runs by creation time, nor their
    attempts and triggering events;
  - the organisation's repositories, and the change sensor's conditional probe (free when unchanged).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from resources.http.ahead import ordered
from resources.http.client import MalformedPage, RateLimited, SourceUnavailable
from resources.settings import Settings
from resources.sources.github import GitHubClient, PullKey
from resources.sources.paging import Item, time_or_none

log = logging.getLogger(__name__)

RATE = "rateLimit { cost remaining resetAt limit nodeCount used }"
PULL_FIELDS = """fragment PullFields on PullRequest {
  id fullDatabaseId number title body state isDraft url createdAt updatedAt closedAt mergedAt
  headRefName headRefOid baseRefName baseRefOid authorAssociation
  author { __typename login }
}"""
REVIEW_PAGE = """fragment ReviewPage on PullRequestReviewConnection {
  pageInfo { hasNextPage endCursor }
  nodes { id fullDatabaseId state body submittedAt url authorAssociation author { __typename login } commit { oid } }
}"""
COMMIT_PAGE = """fragment CommitPage on PullRequestCommitConnection {
  pageInfo { hasNextPage endCursor }
  nodes { commit { id oid message url authoredDate committedDate
    author { name email date user { login } } committer { name email date } } }
}"""
RUN_PAGE = """fragment RunPage on CheckRunConnection {
  pageInfo { hasNextPage endCursor }
  nodes { id databaseId name status conclusion startedAt completedAt url detailsUrl externalId }
}"""
SUITE_PAGE = """fragment SuitePage on CheckSuiteConnection {
  pageInfo { hasNextPage endCursor }
  nodes { id databaseId app { databaseId slug name }
    checkRuns(first: $page, filterBy: {checkType: ALL}) { ...RunPage } }
}""" + "\n" + RUN_PAGE

PULLS_QUERY = f"""query PullRequests($owner: String!, $name: String!, $first: Int!, $after: String) {{
  {RATE}
  repository(owner: $owner, name: $name) {{
    pullRequests(first: $first, after: $after, orderBy: {{field: UPDATED_AT, direction: DESC}}) {{
      pageInfo {{ hasNextPage endCursor }} nodes {{ ...PullFields }}
    }}
  }}
}}
{PULL_FIELDS}"""
REVIEWS_AFTER = f"""query PullRequestReviewsAfter($owner: String!, $name: String!, $number: Int!, $page: Int!,
    $after: String!) {{
  {RATE}
  repository(owner: $owner, name: $name) {{ pullRequest(number: $number) {{
    reviews(first: $page, after: $after) {{ ...ReviewPage }} }} }}
}}
{REVIEW_PAGE}"""
COMMITS_AFTER = f"""query PullRequestCommitsAfter($owner: String!, $name: String!, $number: Int!, $page: Int!,
    $after: String!) {{
  {RATE}
  repository(owner: $owner, name: $name) {{ pullRequest(number: $number) {{
    commits(first: $page, after: $after) {{ ...CommitPage }} }} }}
}}
{COMMIT_PAGE}"""
SUITES_AFTER = f"""query CheckSuitesAfter($owner: String!, $name: String!, $oid: GitObjectID!, $suites: Int!,
    $page: Int!, $after: String!) {{
  {RATE}
  repository(owner: $owner, name: $name) {{ object(oid: $oid) {{ ... on Commit {{
    checkSuites(first: $suites, after: $after) {{ ...SuitePage }} }} }} }}
}}
{SUITE_PAGE}"""
RUNS_AFTER = f"""query CheckRunsAfter($suite: ID!, $page: Int!, $after: String!) {{
  {RATE}
  node(id: $suite) {{ ... on CheckSuite {{ checkRuns(first: $page, after: $after, filterBy: {{checkType: ALL}}) {{
    ...RunPage }} }} }}
}}
{RUN_PAGE}"""

_BOT_EMAIL = re.compile(r"^\d+\+(.+\[bot\])@users\.noreply\.github\.com$")
MAX_REFUSALS = 5  # RATE_LIMITED answers in a row before the run gives up with RateLimited


class GitHubGraphQLClient(GitHubClient):
    """GitHub with pull requests, reviews, PR commits and check runs over GraphQL (see the module)."""

    batch_size = 50  # pull requests (or head commits) per query
    nested_page_size = 100  # reviews, commits or check runs per page of one pull request or suite
    suites_page_size = 5  # check suites per commit in one page (one per Actions run attempt; more: a follow-up)

    def __init__(self, *args: Any, graphql_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.graphql_url = graphql_url or f"{self.base_url}/graphql"
        # GitHub counts GraphQL points apart from REST requests (`x-ratelimit-resource`): each API
        # gets its own client, so a spent REST hour does not stall GraphQL, nor the other way round.
        self.graphql_http = self.http.sibling()
        self.queries = 0
        self.points_spent = 0
        self._remaining: int | None = None  # the budget the last answer reported
        self._reset_at = 0.0
        self._costs: dict[str, int] = {}  # each operation's last cost, the guess for its next one
        self._budget = threading.Lock()  # the counters and budget above, shared by queries in flight
        self.concurrency = 1  # batch queries in flight at once (`CC_GITHUB_CONCURRENCY`)

    @classmethod
    def from_settings(cls, settings: Settings) -> GitHubGraphQLClient:
        client = super().from_settings(settings)
        client.graphql_url = settings.github_graphql_url
        client.concurrency = settings.github_concurrency
        return client  # type: ignore[return-value]

    # ---- the point budget and one query ------------------------------------------------------------
    def _pace(self, operation: str) -> None:
        with self._budget:
            expected = self._costs.get(operation, 1)
            wait = self._reset_at - time.time() + 1.0
            remaining = self._remaining
            if remaining is None or remaining >= expected or wait <= 0:
                return
            self._remaining = None
        self.graphql_http.pause(wait, f"{remaining} GraphQL points left, {operation} costs about "
                                      f"{expected}; waiting for the reset")

    def _query(self, operation: str, query: str, variables: dict[str, Any]) -> tuple[dict, list] | MalformedPage:
        """The answer's `data` and `errors`, or the page that could not be read."""
        body = {"query": query, "variables": variables, "operationName": operation}
        for _ in range(MAX_REFUSALS):
            self._pace(operation)
            page = self.graphql_http.post_json(self.graphql_url, body)
            with self._budget:
                self.queries += 1
            if isinstance(page, MalformedPage):
                return page
            answer = page.data if isinstance(page.data, dict) else {}
            errors = answer.get("errors") or []
            if any(e.get("type") == "RATE_LIMITED" for e in errors if isinstance(e, dict)):
                reset = float(page.headers.get("x-ratelimit-reset") or 0)
                why = f"GraphQL {operation} refused for its points (RATE_LIMITED); waiting for the reset"
                with self._budget:
                    self._remaining = None
                self.graphql_http.pause(max(1.0, reset - time.time() + 1.0), why)
                continue
            if not isinstance(answer.get("data"), dict):
                if errors:
                    messages = "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict))
                    raise SourceUnavailable(f"github: GraphQL {operation} failed: {messages}")
                return MalformedPage(page.url, f"no data in the GraphQL {operation} answer", str(page.data)[:10000],
                                     page.headers)
            self._account(operation, answer["data"].get("rateLimit"))
            return answer["data"], errors
        raise RateLimited(f"github: GraphQL {operation} refused {MAX_REFUSALS} times for its points (RATE_LIMITED)")

    def _account(self, operation: str, rate: Any) -> None:
        if not isinstance(rate, dict):
            return
        cost, remaining = rate.get("cost"), rate.get("remaining")
        moment = time_or_none(rate, "resetAt")
        with self._budget:
            if isinstance(cost, int):
                self._costs[operation] = cost
                self.points_spent += cost
            if isinstance(remaining, int):
                self._remaining = remaining
            if moment is not None:
                self._reset_at = (moment - datetime(1970, 1, 1)).total_seconds()

    def _batches(self, operation: str, queries: Iterable[tuple[list, str, dict[str, Any]]]
                 ) -> Iterator[tuple[list, tuple[dict, list] | MalformedPage]]:
        """Each `(batch, query, variables)`'s answer, in order, `concurrency` queries in flight: the
        server answers one while the last one's records are read."""
        return ordered(lambda q: (q[0], self._query(operation, q[1], q[2])), queries, self.concurrency,
                       name=f"github-{operation}")

    # ---- pull requests --------------------------------------------------------------------------------
    def pull_requests(self, repo: str, start: datetime, end: datetime) -> Iterator[Item]:
        """PRs updated in [start, end): newest first, so paging stops at the first older one."""
        owner, name = repo.split("/", 1)
        after: str | None = None
        while True:
            answer = self._query("PullRequests", PULLS_QUERY,
                                 {"owner": owner, "name": name, "first": self.page_size, "after": after})
            if isinstance(answer, MalformedPage):
                yield answer  # without the page there is no cursor: keep it and stop
                return
            data, errors = answer
            listing = (data.get("repository") or {}).get("pullRequests")
            if not isinstance(listing, dict):
                raise SourceUnavailable(f"github: cannot list the pull requests of {repo}: {_messages(errors)}")
            for node in listing.get("nodes") or []:
                item = pull_record(node) if isinstance(node, dict) else node
                updated = time_or_none(item, "updated_at") if isinstance(item, dict) else None
                if updated is None:
                    yield item  # unreadable: the caller dead-letters it
                elif updated < start:
                    return
                elif updated < end:
                    yield item
            info = listing.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")

    def reviews_of(self, pulls: Iterable[PullKey]) -> Iterator[tuple[PullKey, Item]]:
        yield from self._of_pulls(pulls, "PullRequestReviews", "reviews", "ReviewPage", REVIEW_PAGE,
                                  REVIEWS_AFTER, review_record)

    def pull_commits_of(self, pulls: Iterable[PullKey]) -> Iterator[tuple[PullKey, Item]]:
        yield from self._of_pulls(pulls, "PullRequestCommits", "commits", "CommitPage", COMMIT_PAGE,
                                  COMMITS_AFTER, lambda node: commit_record((node or {}).get("commit")))

    def _of_pulls(self, pulls: Iterable[PullKey], operation: str, connection: str, fragment: str, fragment_text: str,
                  after_query: str, record: Callable[[Any], Item]) -> Iterator[tuple[PullKey, Item]]:
        """Each pull request's `connection`, fetched once per distinct PR, in the order asked."""
        keys = list(pulls)
        distinct = list(dict.fromkeys((str(k[0]), int(k[1])) for k in keys))

        def batch_query(batch: list) -> tuple[list, str, dict[str, Any]]:
            head = ", ".join(f"$o{i}: String!, $r{i}: String!, $n{i}: Int!" for i in range(len(batch)))
            selections = "\n".join(
                f"  p{i}: repository(owner: $o{i}, name: $r{i}) {{ pullRequest(number: $n{i}) {{ number "
                f"{connection}(first: $page) {{ ...{fragment} }} }} }}" for i in range(len(batch)))
            query = f"query {operation}($page: Int!, {head}) {{\n  {RATE}\n{selections}\n}}\n{fragment_text}"
            variables: dict[str, Any] = {"page": self.nested_page_size}
            for i, (repo, number) in enumerate(batch):
                owner, name = repo.split("/", 1)
                variables.update({f"o{i}": owner, f"r{i}": name, f"n{i}": number})
            return batch, query, variables

        def answers() -> Iterator[dict[tuple[str, int], list[Item]]]:
            for batch, answer in self._batches(operation, map(batch_query, _chunks(distinct, self.batch_size))):
                if isinstance(answer, MalformedPage):
                    yield _lost(batch, answer, lambda pr: f"{pr[0]}#{pr[1]}")
                    continue
                data, errors = answer
                found: dict[tuple[str, int], list[Item]] = {}
                for i, (repo, number) in enumerate(batch):
                    pull = (data.get(f"p{i}") or {}).get("pullRequest")
                    if not isinstance(pull, dict):
                        found[repo, number] = [_gone(repo, number, errors, f"p{i}", self.graphql_url)]
                        continue
                    owner, name = repo.split("/", 1)
                    more = {"owner": owner, "name": name, "number": number, "page": self.nested_page_size}
                    found[repo, number] = list(self._paged(
                        pull.get(connection), record,
                        lambda cursor, more=more: self._next(f"{operation}After", after_query, more, cursor,
                                                             ("repository", "pullRequest", connection))))
                yield found

        yield from _in_order(keys, lambda key: (str(key[0]), int(key[1])), answers())

    # ---- check runs -----------------------------------------------------------------------------------
    def check_runs_of(self, heads: Iterable[PullKey]) -> Iterator[tuple[PullKey, Item]]:
        """The check runs on each `(repo, number, head_sha, ...)`'s head commit: every suite's runs,
        re-run attempts included (`checkType: ALL`, as REST's `filter=all`)."""
        keys = list(heads)
        distinct = list(dict.fromkeys((str(k[0]), str(k[2])) for k in keys))

        def batch_query(batch: list) -> tuple[list, str, dict[str, Any]]:
            head = ", ".join(f"$o{i}: String!, $r{i}: String!, $s{i}: GitObjectID!" for i in range(len(batch)))
            selections = "\n".join(
                f"  c{i}: repository(owner: $o{i}, name: $r{i}) {{ object(oid: $s{i}) {{ ... on Commit {{ oid "
                f"checkSuites(first: $suites) {{ ...SuitePage }} }} }} }}" for i in range(len(batch)))
            query = (f"query CheckRuns($suites: Int!, $page: Int!, {head}) {{\n  {RATE}\n{selections}\n}}\n"
                     f"{SUITE_PAGE}")
            variables: dict[str, Any] = {"suites": self.suites_page_size, "page": self.nested_page_size}
            for i, (repo, sha) in enumerate(batch):
                owner, name = repo.split("/", 1)
                variables.update({f"o{i}": owner, f"r{i}": name, f"s{i}": sha})
            return batch, query, variables

        def answers() -> Iterator[dict[tuple[str, str], list[Item]]]:
            for batch, answer in self._batches("CheckRuns", map(batch_query, _chunks(distinct, self.batch_size))):
                if isinstance(answer, MalformedPage):
                    yield _lost(batch, answer, lambda head: f"{head[0]}@{head[1][:7]}")
                    continue
                data, errors = answer
                found: dict[tuple[str, str], list[Item]] = {}
                for i, (repo, sha) in enumerate(batch):
                    holder = data.get(f"c{i}")
                    if not isinstance(holder, dict):  # the repository is gone
                        found[repo, sha] = [_gone(repo, None, errors, f"c{i}", self.graphql_url)]
                        continue
                    commit = holder.get("object") or {}  # null: a commit GitHub does not have has no checks
                    owner, name = repo.split("/", 1)
                    more = {"owner": owner, "name": name, "oid": sha, "suites": self.suites_page_size,
                            "page": self.nested_page_size}
                    suites = self._paged(
                        commit.get("checkSuites"), lambda suite: suite, lambda cursor, more=more: self._next(
                            "CheckSuitesAfter", SUITES_AFTER, more, cursor, ("repository", "object", "checkSuites")))
                    found[repo, sha] = [run for suite in suites for run in self._runs(suite, sha)]
                yield found

        yield from _in_order(keys, lambda key: (str(key[0]), str(key[2])), answers())

    def _runs(self, suite: Any, sha: str) -> Iterator[Item]:
        if isinstance(suite, MalformedPage) or not isinstance(suite, dict):
            yield suite
            return
        more = {"suite": suite.get("id"), "page": self.nested_page_size}
        yield from self._paged(suite.get("checkRuns"), lambda node: check_run_record(node, suite, sha),
                               lambda cursor: self._next("CheckRunsAfter", RUNS_AFTER, more, cursor,
                                                         ("node", "checkRuns")))

    # ---- nested pages ---------------------------------------------------------------------------------
    def _paged(self, page: Any, record: Callable[[Any], Item], follow: Callable[[str], Any]) -> Iterator[Item]:
        """A nested connection's records, its later pages fetched by `follow(cursor)`."""
        while isinstance(page, dict):
            for node in page.get("nodes") or []:
                yield record(node)
            info = page.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            page = follow(info.get("endCursor"))
        if isinstance(page, MalformedPage):
            yield page

    def _next(self, operation: str, query: str, variables: dict, cursor: str, path: tuple[str, ...]) -> Any:
        answer = self._query(operation, query, {**variables, "after": cursor})
        if isinstance(answer, MalformedPage):
            return answer
        found: Any = answer[0]
        for step in path:
            found = found.get(step) if isinstance(found, dict) else None
        if found is None:
            raise SourceUnavailable(f"github: GraphQL {operation} answered no {'.'.join(path)}: "
                                    f"{_messages(answer[1])}")
        return found


def github_client(settings: Settings) -> GitHubClient:
    """The client `CC_GITHUB_API` asks for: GraphQL for pull requests and theirs, or REST for all."""
    if settings.github_api == "graphql":
        return GitHubGraphQLClient.from_settings(settings)
    return GitHubClient.from_settings(settings)


def _in_order(keys: list[PullKey], ident: Callable[[PullKey], tuple], answers: Iterator[dict[tuple, list[Item]]]
              ) -> Iterator[tuple[PullKey, Item]]:
    """Each key's records in the keys' order, as soon as the batch answering them is read: the
    caller lands one batch's records while the next batches are in flight, instead of the server
    answering every batch before the client flattens any record. `answers` covers the distinct
    keys in their first order; a pull request asked for twice keeps its records until its last key."""
    left = Counter(ident(key) for key in keys)
    found: dict[tuple, list[Item]] = {}
    for key in keys:
        name = ident(key)
        while name not in found:
            found.update(next(answers))
        items = found[name]
        left[name] -= 1
        if not left[name]:
            del found[name]
        for item in items:
            yield key, item


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


def _messages(errors: list) -> str:
    return "; ".join(str(e.get("message")) for e in errors if isinstance(e, dict)) or "no reason given"


def _lost(batch: list, page: MalformedPage, name: Callable[[Any], str]) -> dict:
    """A batch whose answer could not be read: one dead letter naming them all, kept whole."""
    reason = f"{page.reason} (for {', '.join(name(k) for k in batch)})"
    return {key: [MalformedPage(page.url, reason, page.body, page.headers)] if i == 0 else []
            for i, key in enumerate(batch)}


def _gone(repo: str, number: int | None, errors: list, alias: str, url: str) -> MalformedPage:
    """A pull request (or repository) GitHub no longer has: a dead letter, and the others land."""
    mine = [e for e in errors if isinstance(e, dict) and (e.get("path") or [None])[0] == alias]
    kind = next((e.get("type") for e in mine if e.get("type")), "no data")
    what = f"pull request {repo}#{number}" if number is not None else f"repository {repo}"
    return MalformedPage(url, f"{what} is gone (GraphQL {kind}): deleted or transferred; {_messages(mine)}", "", {})


# ---- GraphQL nodes in the REST shapes --------------------------------------------------------------
def _copy(node: dict, fields: tuple) -> dict:
    """The REST record's keys for the GraphQL fields the node has (a field it lacks stays absent, so
    a broken node fails the raw table's required columns instead of landing empty)."""
    return {rest: (convert(node[name]) if convert and node[name] is not None else node[name])
            for rest, name, convert in fields if name in node}


def _actor(node: Any) -> dict | None:
    """An `Actor` as REST's `user`: a bot's login ends in `[bot]` there, and its type is `Bot`."""
    if not isinstance(node, dict) or not node.get("login"):
        return None
    kind, login = str(node.get("__typename") or "User"), str(node["login"])
    if kind == "Bot" and not login.endswith("[bot]"):
        login += "[bot]"
    return {"login": login, "type": kind}


def _lower(value: str) -> str:
    return value.lower()


def _pull_state(value: str) -> str:
    return "open" if value == "OPEN" else "closed"  # REST folds MERGED into closed (`merged_at` says it)


PULL = (("id", "fullDatabaseId", int), ("node_id", "id", None), ("number", "number", None),
        ("title", "title", None), ("body", "body", None), ("state", "state", _pull_state), ("draft", "isDraft", None),
        ("html_url", "url", None),
        ("created_at", "createdAt", None), ("updated_at", "updatedAt", None), ("closed_at", "closedAt", None),
        ("merged_at", "mergedAt", None), ("author_association", "authorAssociation", None),
        ("user", "author", _actor))  # no `mergedBy`: REST's listing has no `merged_by`, and the same events land
REVIEW = (("id", "fullDatabaseId", int), ("node_id", "id", None), ("user", "author", _actor), ("body", "body", None),
          ("state", "state", None), ("html_url", "url", None), ("submitted_at", "submittedAt", None),
          ("author_association", "authorAssociation", None), ("commit_id", "commit", lambda c: c.get("oid")))
CHECK_RUN = (("id", "databaseId", None), ("node_id", "id", None), ("name", "name", None),
             ("status", "status", _lower), ("conclusion", "conclusion", _lower), ("started_at", "startedAt", None),
             ("completed_at", "completedAt", None), ("html_url", "url", None), ("details_url", "detailsUrl", None),
             ("external_id", "externalId", None))


def pull_record(node: dict) -> dict:
    out = _copy(node, PULL)
    out["head"] = {"ref": node.get("headRefName"), "sha": node.get("headRefOid")}
    out["base"] = {"ref": node.get("baseRefName"), "sha": node.get("baseRefOid")}
    return out


def review_record(node: Any) -> Item:
    return _copy(node, REVIEW) if isinstance(node, dict) else node


def commit_record(node: Any) -> Item:
    if not isinstance(node, dict):
        return node
    author, committer = node.get("author") or {}, node.get("committer") or {}
    out = _copy(node, (("sha", "oid", None), ("node_id", "id", None), ("html_url", "url", None)))
    out["commit"] = {
        "message": node.get("message"),
        "author": {"name": author.get("name"), "email": author.get("email"), "date": node.get("authoredDate")},
        "committer": {"name": committer.get("name"), "email": committer.get("email"),
                      "date": node.get("committedDate")},
    }
    user = author.get("user")
    bot = _BOT_EMAIL.match(str(author.get("email") or ""))
    out["author"] = ({"login": user["login"], "type": "User"} if isinstance(user, dict) and user.get("login")
                     else {"login": bot[1], "type": "Bot"} if bot else None)
    return out


def check_run_record(node: Any, suite: dict, sha: str) -> Item:
    if not isinstance(node, dict):
        return node
    app = suite.get("app") or {}
    return {**_copy(node, CHECK_RUN), "head_sha": sha,
            "app": {"id": app.get("databaseId"), "slug": app.get("slug"), "name": app.get("name")},
            "check_suite": {"id": suite.get("databaseId")}}
