"""Host samples in: `POST /events` with `system.metrics`, landed once per sample id and pushed to
`metrics:realtime` (the sidecar's other input beside the webhooks, `Sidecar.accept`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from cc_events import InvalidRecord
from cc_events.helpers import parse_time
from cc_events.registry import RAW_TABLES
from resources.ingest.metrics_agent import STREAM as METRICS_STREAM
from streaming.data.marts import utcnow
from streaming.journal import encode_line
from streaming.rooms import message
from streaming.samples import ROOM as METRICS_ROOM

# The sidecar (streaming.sidecar.Sidecar) that calls in here: not imported, even for typing, as it
# imports this module (tests/cc_events/test_no_cycles.py).
Sidecar = Any

log = logging.getLogger(__name__)

# A host sample's landed marker among the delivery keys shared by replicas (`Broker.landed`).
SAMPLE_MARK = "system.metrics:"


async def accept_metrics(sidecar: Sidecar, data: Any) -> JSONResponse:
    """Land host samples once per sample id and push them to `metrics:realtime`.

    A sample whose id is already landed (the agent sending again after a lost answer, or
    catching up after an outage) is not landed again: 202 once every new one is fsynced, with
    how many were new; 400 if any sample is not one (nothing is landed); 503 if the disk
    fails. The room gets each sample this replica has not seen yet (`LiveSamples`)."""
    samples = data if isinstance(data, list) else [data]
    table = RAW_TABLES["system", "metrics"]
    problems = []
    lines: dict[str, tuple[dict, datetime, bytes]] = {}  # sample id -> sample, time, landing line
    for sample in samples:
        try:
            table.flatten(sample)
            sampled_at = parse_time(sample["sampled_at"], "sampled_at")
            # Landed under the sample's own day, as the agent does, so its partition finds it.
            line = encode_line(sample, sampled_at)
        except (InvalidRecord, TypeError, KeyError, orjson.JSONEncodeError) as exc:
            problems.append(str(exc))
            continue
        lines.setdefault(str(sample["id"]), (sample, sampled_at, line))
    if problems:
        now = utcnow()
        for problem in problems[:20]:
            sidecar.facts.dead_letter("system", problem, now)
        return JSONResponse({"detail": "schema-invalid metrics sample(s)", "problems": problems[:20]},
                            status_code=400)
    try:
        landed = await _land(sidecar, lines)
        sidecar.facts.received("system", utcnow())
    except OSError as exc:
        return JSONResponse({"detail": f"could not store the samples, retry: {exc}"}, status_code=503,
                            headers={"Retry-After": "5"})
    try:
        for sample_id, (sample, _, _) in lines.items():
            if sample_id not in sidecar.samples:
                await sidecar.broker.publish(METRICS_ROOM, message("system.metrics", METRICS_ROOM, sample))
    except Exception:
        log.exception("publishing metrics failed (they are landed)")
    return JSONResponse({"status": "landed", "samples": len(lines), "landed": landed,
                         "duplicates": len(lines) - landed}, status_code=202)

async def _land(sidecar: Sidecar, lines: dict[str, tuple[dict, datetime, bytes]]) -> int:
    """Land the samples whose ids are not landed yet (by this replica's index and, with Redis,
    any replica's markers, or with the shared landing its keys); returns how many. A copy of an
    id still being written waits for that write, as a webhook redelivery does (`DeliveryIndex.claim`)."""
    ids = list(lines)
    shared_landing = sidecar.shared_landing  # its unique keys dedupe across replicas: no markers
    if sidecar._shared and not shared_landing:
        elsewhere = await asyncio.gather(*(sidecar.broker.landed((SAMPLE_MARK + i,)) for i in ids))
        ids = [i for i, found in zip(ids, elsewhere, strict=True) if not found]
    claims = [c for c in await asyncio.gather(*(sidecar.sample_ids.claim((i,)) for i in ids)) if c is not None]
    by_day: dict[Any, list] = {}
    for claim in claims:
        by_day.setdefault(lines[claim.keys[0]][1].date(), []).append(claim)
    writes = []
    try:
        for group in by_day.values():
            first = lines[group[0].keys[0]][1]
            data, keys = b"".join(lines[c.keys[0]][2] for c in group), tuple(c.keys[0] for c in group)
            write = (sidecar.journal.submit(METRICS_STREAM, data, first, keys, each=True) if shared_landing
                     else sidecar.journal.submit(METRICS_STREAM, data, first, keys))
            # The write's own outcome settles its claims, whatever happens to this request.
            write.add_done_callback(lambda done, group=group: [sidecar.sample_ids.settle(
                c, durable=not done.cancelled() and done.exception() is None) for c in group])
            writes.append((write, group))
    except BaseException:
        submitted = {id(c) for _, group in writes for c in group}
        for claim in claims:
            if id(claim) not in submitted:
                sidecar.sample_ids.settle(claim, durable=False)
        raise
    elsewhere = 0  # landed by another replica (the shared landing's keys)
    for write, _ in writes:
        elsewhere += len(await asyncio.shield(write) or ())
    if claims and sidecar._shared and not shared_landing:
        await sidecar.broker.mark_landed(tuple(SAMPLE_MARK + c.keys[0] for c in claims))
    return len(claims) - elsewhere
