"""`slowloris`: 1,000 stalled connections and 100 trickled bodies against a sidecar whose
open-file limit is 1,024, while a signed sender posts 100 webhooks/s.

Every webhook must be acknowledged and landed (acked lost = sent but not acknowledged, or
acknowledged and not in the landing log), with no 5xx; a trickled, unsigned body accepted is a
wrong acceptance. Notes: ack p50/p99 and what the attack saw (connections cut, 408s).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts.chaos import Context, Row, Scenario
from scripts.chaos.harness import ROOT, SECRETS, Sidecar
from scripts.chaos.traffic import Attack, Sent, percentile, send_webhooks


@dataclass
class Phase:
    sent: Sent
    attack: Attack | None

    def ack_ms(self, q: float) -> float | None:
        value = percentile(list(self.sent.acked.values()), q)
        return None if value is None else value * 1000


async def send_during(port: int, rate: float, seconds: float, run: str, *, stalled: int = 0,
                      trickled: int = 0, workdir: Path) -> Phase:
    """Webhooks at `rate` for `seconds`, while `stalled` + `trickled` slowloris connections are held
    by a process of their own (opened before the first webhook)."""
    if not stalled + trickled:
        return Phase(await send_webhooks(port, rate, seconds, run), None)
    out = workdir / f"attack-{run}.json"
    attacker = subprocess.Popen([sys.executable, "-m", "scripts.chaos.traffic", str(port), str(stalled),
                                 str(trickled), str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        ready = await asyncio.to_thread(attacker.stdout.readline)
        if ready.strip() != "ready":
            raise RuntimeError(f"the slowloris process did not start (exit {attacker.poll()})")
        sent = await send_webhooks(port, rate, seconds, run)
    finally:
        attacker.terminate()
        await asyncio.to_thread(attacker.wait, 30)
    return Phase(sent, Attack(**json.loads(out.read_text())))


def run(ctx: Context) -> list[Row]:
    # A host with the usual 1,024-file limit, the one the attack used up before.
    server = Sidecar(ctx.workdir / "data", dict(SECRETS), max_open_files=1024).start()
    try:
        phase = asyncio.run(send_during(server.port, 100, max(5.0, ctx.seconds - 10), "loris",
                                        stalled=1000, trickled=100, workdir=ctx.workdir))
        landed = {line.get("delivery_id") for line in server.landed()}
    finally:
        server.stop()
    sent, attack = phase.sent, phase.attack
    lost = (sent.sent - len(sent.acked)) + len(sent.deliveries("loris") - landed)
    p50, p99 = phase.ack_ms(0.5), phase.ack_ms(0.99)
    return [Row("slowloris", attempts=sent.sent, acked_lost=lost, errors_5xx=sent.errors_5xx,
                wrongly_accepted=attack.answered_2xx,
                notes=f"{len(sent.acked):,} acked, {sent.failures} unanswered; ack p50 "
                      + ("–" if p50 is None else f"{p50:.0f} ms") + ", p99 "
                      + ("–" if p99 is None else f"{p99:.0f} ms")
                      + f"; attack: {attack.opened:,} connections, {attack.cut:,} cut, "
                        f"{attack.answered_408:,} × 408; fd limit 1,024")]


SCENARIO = Scenario("slowloris", run, seconds=40)
