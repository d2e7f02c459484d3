"""A WebSocket client that stops reading, beside 50 that read, under a steady webhook load: it is
closed with 4408 (too slow) — what it reads when it finally reads — and the others miss nothing."""

from __future__ import annotations

import asyncio

import pytest

from scripts.chaos.slow_ws_client import slow_beside_normal

PING_INTERVAL_S, PING_TIMEOUT_S = 20, 1


@pytest.mark.parametrize("endpoint", ["ws", "socket.io"])
def test_a_client_that_stops_reading_gets_4408_and_the_others_get_every_event(make_sidecar, endpoint):
    server = make_sidecar({"CC_WS_SLOW_AFTER_S": "2", "CC_WS_QUEUE_MAX": "200",
                           # The keepalive ping that the stalled client never answers times out at
                           # about 21 s; it reads after that, so a close stuck behind flow control
                           # shows as the keepalive's 1011.
                           "CC_WS_PING_INTERVAL_S": str(PING_INTERVAL_S), "CC_WS_PING_TIMEOUT_S": str(PING_TIMEOUT_S)})
    outcome = asyncio.run(slow_beside_normal(server, normal=50, rate=200, load_s=20, padding=2000,
                                             read_after_s=PING_INTERVAL_S + PING_TIMEOUT_S + 1,
                                             socket_io=endpoint == "socket.io"))
    assert outcome.kicked_after_s is not None, "the stalled client was never closed"
    assert outcome.close_code == 4408, f"closed with {outcome.close_code}, kicked after {outcome.kicked_after_s:.1f} s of load"
    if endpoint == "socket.io":  # what the seeds' client sees: the notice, then the disconnect
        assert outcome.told_too_slow, outcome.last_texts
    assert len(outcome.sent.acked) == outcome.sent.sent > 0
    assert outcome.missed == 0
