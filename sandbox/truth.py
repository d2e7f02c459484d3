"""Ground truth: every event the world holds, with the workflow the contract's rule gives it.

Keys come from the linkage the generator recorded (`refs`, `pull`, `issue`, `correlation_id`), never
from reading the text. A workflow is a connected component of the event-key graph, named by its
root key: lowest priority number (linear 1, github 2, corr 3), ties by the smallest md5 hex.

The agent-side sources (OpenClaw sessions, cron runs, weather opportunities) have their own truth
(`truth_agents.parquet`): a session names keys of at most one workflow of the main truth, so it
joins that workflow without merging any; cron and weather events name no key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.model import AgentWorld, Commit, Org, Session, WorkflowRun, paused_gc

PRIORITY = {"linear": 1, "github": 2, "corr": 3}

# event_id, event_type, source, event_at (epoch s), keys
Event = tuple[str, str, str, int, tuple[str, ...]]


def events(org: Org) -> Iterator[Event]:
    """The events of contract section 2, one per record (two for a closed PR or issue)."""
    for issue in org.linear_issues:
        own = (issue.key,)
        yield f"linear:issue:{issue.id}:created", "linear.issue.created", "linear", issue.created_at, own
        for h in issue.history:
            yield f"linear:history:{h.id}", "linear.issue.state_changed", "linear", h.created_at, own
        for c in issue.comments:  # a comment names its issue, never what its text mentions
            yield f"linear:comment:{c.id}", "linear.comment.created", "linear", c.created_at, own
    for pull in org.pulls:
        own = pull.key
        keys = (own, *(r.key for r in pull.refs))
        base = f"github:pr:{pull.repo.full_name}#{pull.number}"
        yield f"{base}:opened", "github.pr.opened", "github", pull.created_at, keys
        if pull.merged_at is not None:
            yield f"{base}:merged", "github.pr.merged", "github", pull.merged_at, keys
        elif pull.closed_at is not None:
            yield f"{base}:closed", "github.pr.closed", "github", pull.closed_at, keys
        for review in pull.reviews:
            yield (
                f"github:review:{review.id}",
                "github.review.submitted",
                "github",
                review.submitted_at,
                (own,),
            )
        for commit in pull.commits:
            yield _commit(commit, own)
        for run in pull.runs:  # CI names the PR it ran for; check runs as listed for the PR's head
            if run.completed_at is not None:
                yield _workflow_run(run, (own,))
            if run.commit.sha == pull.head_sha:
                for check in run.checks:
                    if check.completed_at is not None:
                        yield (f"github:check_run:{check.id}", "github.check_run.completed", "github",
                               check.completed_at, (own,))
    for issue in org.gh_issues:
        own = (issue.key,)
        base = f"github:issue:{issue.repo.full_name}#{issue.number}"
        yield f"{base}:opened", "github.issue.opened", "github", issue.created_at, own
        if issue.closed_at is not None:
            yield f"{base}:closed", "github.issue.closed", "github", issue.closed_at, own
    for commit in org.commits:
        yield _commit(commit)
    for run in org.workflow_runs:  # pushes to the default branch: no PR, no workflow
        if run.pull is None and run.completed_at is not None:
            yield _workflow_run(run, ())
    for act in org.activities:
        keys = [r.key for r in act.refs]
        if act.issue:
            keys.append(act.issue.key)
        if act.pull:
            keys.append(act.pull.key)
        if act.correlation_id:
            keys.append(f"corr:{act.correlation_id}")
        yield f"charlie:activity:{act.id}", f"charlie.{act.type}", "charlie", act.timestamp, tuple(keys)


def _commit(commit: Commit, pull_key: str | None = None) -> Event:
    keys = [r.key for r in commit.refs]
    if commit.pull:
        keys.append(pull_key or commit.pull.key)
    return f"github:commit:{commit.sha}", "github.commit.pushed", "github", commit.date, tuple(keys)


def _workflow_run(run: WorkflowRun, keys: tuple[str, ...]) -> Event:
    return (f"github:workflow_run:{run.id}:{run.run_attempt}", "github.workflow_run.completed", "github",
            run.completed_at, keys)


def root_order(key: str) -> tuple[int, str]:
    return PRIORITY[key.split(":", 1)[0]], hashlib.md5(key.encode()).hexdigest()


def agent_events(agents: AgentWorld) -> Iterator[Event]:
    """The agent-side sources' events (docs/contract_sources.md)."""
    for s in agents.sessions:
        keys = session_keys(s)
        base = f"openclaw:session:{s.id}"
        yield f"{base}:started", "openclaw.session.started", "openclaw", s.started_at, keys
        if s.ended_at is not None:
            yield f"{base}:ended", f"openclaw.session.{s.status}", "openclaw", s.ended_at, keys
    for e in agents.cron_events:
        yield f"cron:run:{e.run_id}:{e.event}", f"cron.job.{e.event}", "cron", e.at, ()
    for o in agents.opportunities:
        yield f"weather:opportunity:{o.id}", "weather.opportunity.detected", "weather", o.detected_at, ()


def session_keys(session: Session) -> tuple[str, ...]:
    return tuple(x.key for x in (session.issue, session.pull) if x is not None)


@dataclass(slots=True)
class Truth:
    """Columns of the truth table, sorted by event_at."""

    event_id: list[str]
    workflow_id: list[str | None]
    event_type: list[str]
    source: list[str]
    event_at: list[int]
    # key -> union-find parent, and component root -> (order, root key): what `workflow_of` reads.
    parent: dict[str, str] = field(default_factory=dict, repr=False)
    best: dict[str, tuple[tuple[int, str], str]] = field(default_factory=dict, repr=False)

    def workflow_of(self, key: str) -> str | None:
        """The workflow a key belongs to, or None when no event names it."""
        if key not in self.parent:
            return None
        while (up := self.parent[key]) != key:
            key = up
        return self.best[key][1]

    def rows(self) -> Iterator[dict]:
        names = ("event_id", "workflow_id", "event_type", "source", "event_at")
        columns = (self.event_id, self.workflow_id, self.event_type, self.source, self.event_at)
        for values in zip(*columns, strict=True):
            yield dict(zip(names, values, strict=True))


def build(org: Org) -> Truth:
    """Union the keys each event names, then name every component by its root key."""
    return build_from(events(org))


def build_from(stream: Iterable[Event]) -> Truth:
    """The truth of any event stream (the org's, or the org's and the agents' together in tests)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while (up := parent[root]) != root:
            root = up
        while (up := parent[key]) != root:  # path compression keeps 1M-event worlds fast
            parent[key], key = root, up
        return root

    ids, kinds, sources, ats, firsts = [], [], [], [], []
    with paused_gc():
        for event_id, kind, source, at, keys in stream:
            first = None
            for key in keys:
                parent.setdefault(key, key)
                if first is None:
                    first = find(key)
                elif (other := find(key)) != first:
                    parent[other] = first
            ids.append(event_id)
            kinds.append(kind)
            sources.append(source)
            ats.append(at)
            firsts.append(keys[0] if keys else None)
        best: dict[str, tuple[tuple[int, str], str]] = {}
        for key in parent:
            root, order = find(key), root_order(key)
            if root not in best or order < best[root][0]:
                best[root] = (order, key)
        if len(set(ids)) != len(ids):
            raise AssertionError("duplicate event ids in the generated world")
        # Stable on time alone: generation order breaks ties, deterministically.
        order = sorted(range(len(ids)), key=ats.__getitem__)
        workflows = [best[find(firsts[i])][1] if firsts[i] else None for i in order]
        return Truth([ids[i] for i in order], workflows, [kinds[i] for i in order],
                     [sources[i] for i in order], [ats[i] for i in order], parent, best)


def build_agents(agents: AgentWorld, truth: Truth) -> Truth:
    """The agent sources' truth against the main one: a session takes the workflow of the keys it names.

    Raises when a session names a key no main event names, or keys of two workflows: either would
    change the main truth, which the agent sources must leave alone.
    """
    ids, workflows, kinds, sources, ats = [], [], [], [], []
    for event_id, kind, source, at, keys in agent_events(agents):
        found = {truth.workflow_of(k) for k in keys}
        if None in found or len(found) > 1:
            raise AssertionError(f"{event_id} names {keys}: workflows {found}")
        ids.append(event_id)
        workflows.append(found.pop() if found else None)
        kinds.append(kind)
        sources.append(source)
        ats.append(at)
    if len(set(ids)) != len(ids):
        raise AssertionError("duplicate event ids in the agent sources")
    order = sorted(range(len(ids)), key=ats.__getitem__)
    return Truth([ids[i] for i in order], [workflows[i] for i in order], [kinds[i] for i in order],
                 [sources[i] for i in order], [ats[i] for i in order])


def write_parquet(truth: Truth, path: Path) -> Path:
    """`truth.parquet` (or `truth_agents.parquet`): event_id, workflow_id, event_type, source, event_at (UTC)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    seconds = pa.array(truth.event_at, pa.int64()).cast(pa.timestamp("s", "UTC"))
    table = pa.table({
        "event_id": pa.array(truth.event_id, pa.string()),
        "workflow_id": pa.array(truth.workflow_id, pa.string()),
        "event_type": pa.array(truth.event_type, pa.string()),
        "source": pa.array(truth.source, pa.string()),
        "event_at": seconds.cast(pa.timestamp("us", "UTC")),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)
    return path
