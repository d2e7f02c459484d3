"""The generated world: deterministic, inside its window, and its truth follows the contract's rule."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict

import pyarrow.parquet as pq

from sandbox import generate
from sandbox import truth as truth_mod
from sandbox.generator import to_epoch

END = "2026-11-20T12:00:00Z"
WORKFLOW_ID = re.compile(r"linear:(ENG|OPS|DATA)-\d+|github:acme/[a-z0-9-]+#\d+|corr:run-[0-9a-f]{8}")


def _truth(seed: int = 7, events: int = 600) -> truth_mod.Truth:
    return truth_mod.build(generate(seed, events, 7, END))


def test_same_arguments_give_the_same_truth_file(tmp_path):
    first = truth_mod.write_parquet(_truth(), tmp_path / "a" / "truth.parquet")
    second = truth_mod.write_parquet(_truth(), tmp_path / "b" / "truth.parquet")
    assert pq.read_table(first).equals(pq.read_table(second))
    assert first.read_bytes() == second.read_bytes()
    assert _truth(seed=8).event_id != _truth().event_id


def test_event_count_tracks_the_target_and_stays_in_the_window():
    for target in (200, 600, 5000):
        truth = _truth(events=target)
        assert target <= len(truth.event_id) <= target * 1.05
    end = to_epoch(END)
    assert all(end - 7 * 86400 <= t <= end for t in truth.event_at)


def test_workflow_ids_are_root_keys_of_known_kinds():
    truth = _truth(events=5000)
    ids = {w for w in truth.workflow_id if w}
    assert ids and all(WORKFLOW_ID.fullmatch(w) for w in ids)
    assert {w.split(":")[0] for w in ids} == {"linear", "github", "corr"}
    heartbeats = [
        w for w, t in zip(truth.workflow_id, truth.event_type, strict=True) if t == "charlie.heartbeat"
    ]
    assert heartbeats and set(heartbeats) == {None}


def test_a_charlie_run_that_opens_a_pr_is_rooted_at_the_pr():
    org = generate(7, 5000, 7, END)
    truth = truth_mod.build(org)
    workflow = dict(zip(truth.event_id, truth.workflow_id, strict=True))
    runs = [a for a in org.activities if a.correlation_id and a.pull]
    assert runs
    for act in runs:  # priority 2 beats corr's 3
        assert workflow[f"charlie:activity:{act.id}"] == workflow[f"github:pr:{act.pull.ref}:opened"]
        assert workflow[f"charlie:activity:{act.id}"].startswith("github:")
    lone = [a for a in org.activities if a.correlation_id and a.type == "task.started"]
    by_corr = defaultdict(set)
    for a in org.activities:
        if a.correlation_id:
            by_corr[a.correlation_id].add(workflow[f"charlie:activity:{a.id}"])
    assert all(len(ws) == 1 for ws in by_corr.values())
    assert any(workflow[f"charlie:activity:{a.id}"] == f"corr:{a.correlation_id}" for a in lone)


def test_root_is_lowest_priority_then_smallest_md5():
    assert truth_mod.root_order("corr:run-00000001")[0] == 3
    assert min(["github:acme/api#3", "corr:run-00000001"], key=truth_mod.root_order) == "github:acme/api#3"
    pair = ["linear:ENG-2", "linear:OPS-9"]
    smallest = min(pair, key=lambda k: hashlib.md5(k.encode()).hexdigest())
    assert min([*pair, "github:acme/api#3"], key=truth_mod.root_order) == smallest
