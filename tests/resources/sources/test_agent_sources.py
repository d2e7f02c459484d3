"""The OpenClaw, cron and weather clients against the sandbox over real HTTP, and the SSE parser."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from resources.http.client import HttpClient, MalformedPage, SourceUnavailable
from resources.http.sse import SseEvent, SseParser
from resources.sources.cron import CronClient
from resources.sources.openclaw import OpenClawClient
from resources.sources.weather import WeatherClient
from sandbox.process import run_sandbox

END = datetime(2026, 11, 20, 15, 30)
START = END - timedelta(days=3)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(tmp_path_factory.mktemp("sandbox"), events=800, days=3, end=END) as handle:
        yield handle


@pytest.fixture(autouse=True)
def no_faults(sandbox):
    sandbox.clear_faults()
    yield
    sandbox.clear_faults()


class Sleeps(list):
    """Records the waits a client asks for, instead of sleeping through them."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def http(source: str, sleeps: Sleeps | None = None, **kwargs) -> HttpClient:
    return HttpClient(source, sleep=sleeps if sleeps is not None else Sleeps(), backoff_s=0.01, **kwargs)


def cron(sandbox, sleeps: Sleeps | None = None, **kwargs) -> CronClient:
    sleeps = sleeps if sleeps is not None else Sleeps()
    return CronClient(http("cron", sleeps, **kwargs), sandbox.cron_url, page_size=200, sleep=sleeps)


def updated(record: dict) -> datetime:
    return datetime.fromisoformat(record["updated_at"].replace("Z", "+00:00")).replace(tzinfo=None)


# ---- OpenClaw -------------------------------------------------------------------------------------
def test_sessions_follow_the_cursor_inside_the_window(sandbox):
    client = OpenClawClient(http("openclaw"), sandbox.openclaw_url, page_size=5)
    everything = list(client.sessions(START - timedelta(days=1)))
    assert len(everything) > 10 and client.http.requests_made > 2
    assert len({s["id"] for s in everything}) == len(everything)
    since, until = END - timedelta(days=2), END - timedelta(days=1)
    window = list(OpenClawClient(http("openclaw"), sandbox.openclaw_url, page_size=4).sessions(since, until))
    assert window == [s for s in everything if since <= updated(s) < until] and window
    assert client.session(window[0]["id"]) == window[0]
    linked = [s for s in everything if s["issue_key"] or s["repo"]]
    assert linked and any(s["instance_id"] for s in linked) and any(not s["issue_key"] for s in everything)


def test_sessions_retry_a_503_and_hand_back_a_malformed_page(sandbox):
    sandbox.set_faults([{"match": "/openclaw/v1/sessions", "status": 503, "times": 2}])
    sleeps = Sleeps()
    client = OpenClawClient(http("openclaw", sleeps), sandbox.openclaw_url, page_size=50)
    assert list(client.sessions(START))
    assert len(sleeps) == 2
    sandbox.set_faults([{"match": "/openclaw/v1/sessions", "kind": "malformed_json", "times": 1}])
    items = list(OpenClawClient(http("openclaw"), sandbox.openclaw_url).sessions(START))
    assert len(items) == 1 and isinstance(items[0], MalformedPage) and "invalid JSON" in items[0].reason


# ---- weather --------------------------------------------------------------------------------------
def test_opportunities_page_by_number_since(sandbox):
    client = WeatherClient(http("weather"), sandbox.weather_url, page_size=7)
    everything = list(client.opportunities(START - timedelta(days=1)))
    assert len(everything) > 14 and client.http.requests_made > 2
    since = END - timedelta(hours=30)
    later = list(WeatherClient(http("weather"), sandbox.weather_url, page_size=3).opportunities(since))
    assert later == [o for o in everything if updated(o) >= since] and later
    until = END - timedelta(hours=20)
    bounded = list(client.opportunities(since, until))
    assert bounded == [o for o in later if updated(o) < until]


# ---- cron -----------------------------------------------------------------------------------------
def test_polling_and_streaming_give_the_same_events(sandbox):
    client = cron(sandbox)
    jobs = list(client.jobs())
    assert len(jobs) == 11
    polled = list(client.events(after_seq=100))
    assert polled[0]["seq"] == 101 and [e["seq"] for e in polled] == list(range(101, 101 + len(polled)))
    streamed = list(client.stream(last_event_id=100, max_events=300))
    assert streamed == polled[:300]
    assert client.reconnects == 0


def test_stream_reconnects_with_last_event_id_after_a_dropped_connection(sandbox):
    sandbox.set_faults([{"match": "/cron/v1/stream", "kind": "drop_stream", "after": 4, "times": 3}])
    sleeps = Sleeps()
    client = cron(sandbox, sleeps)
    events = list(client.stream(last_event_id=50, max_events=20))
    assert [e["seq"] for e in events] == list(range(51, 71))  # no gap, no repeat
    assert client.reconnects == 3 and sleeps == [1.0, 1.0, 1.0]  # the server's `retry: 1000`


def test_stream_backs_off_when_it_cannot_connect_then_gives_up(sandbox):
    sandbox.set_faults([{"match": "/cron/v1/stream", "status": 503, "times": 2}])
    sleeps = Sleeps()
    assert [e["seq"] for e in cron(sandbox, sleeps).stream(10, max_events=2)] == [11, 12]
    assert len(sleeps) == 2
    sandbox.set_faults([{"match": "/cron/v1/stream", "kind": "down"}])
    sleeps = Sleeps()
    with pytest.raises(SourceUnavailable, match=r"cron: stream .*/cron/v1/stream failed after 4 attempts"):
        list(cron(sandbox, sleeps, max_retries=3).stream(10, max_events=2))
    assert len(sleeps) == 3


def test_stream_ends_on_its_timeout_once_caught_up(sandbox):
    client = cron(sandbox)
    last = list(client.events(0))[-1]["seq"]
    events = list(client.stream(last_event_id=last - 2, timeout_s=0.5))
    assert [e["seq"] for e in events] == [last - 1, last]


def test_bad_event_data_is_handed_back_not_raised(sandbox):
    sandbox.set_faults([{"match": "/cron/v1/events", "kind": "bad_record", "times": 1}])
    events = list(cron(sandbox).events(0))
    assert sum("id" not in e for e in events) == 1


# ---- SSE parsing ----------------------------------------------------------------------------------
def feed_all(parser: SseParser, *chunks: bytes) -> list[SseEvent]:
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_parser_joins_data_lines_and_skips_comments():
    parser = SseParser()
    events = feed_all(parser, b"\xef\xbb\xbf: hello\n", b"retry: 2500\nid: 7\nevent: started\n",
                      b'data: {"a":\ndata:1}\n\n', b"data\n\ndata: x\n")
    assert events == [SseEvent('{"a":\n1}', "started", "7"), SseEvent("", "message", "7")]
    assert parser.retry_ms == 2500 and parser.comments == 1
    assert parser.feed(b"\n") == [SseEvent("x", "message", "7")]  # the blank line completes the event


def test_parser_handles_any_line_ending_split_anywhere():
    stream = b"id: 1\r\ndata: caf\xc3\xa9\r\n\r\nid: 2\rdata: b\r\rid\nretry: 1x\ndata: c\n\n"
    expected = [SseEvent("café", "message", "1"), SseEvent("b", "message", "2"), SseEvent("c", "message", "")]
    for size in range(1, 8):
        parser = SseParser("0")
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert feed_all(parser, *chunks) == expected, size
        assert parser.retry_ms is None  # `retry` takes digits only


class _FlakyStream(BaseHTTPRequestHandler):
    """A plain HTTP/1.0 SSE server (no chunking): each connection sends two events and hangs up."""

    protocol_version = "HTTP/1.0"
    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.seen.append(self.headers.get("Last-Event-ID"))
        start = int(self.headers.get("Last-Event-ID") or 0)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b"retry: 250\n: keep-alive\n\n")
        for n in (start + 1, start + 2):
            self.wfile.write(f'id: {n}\ndata: {{"seq": {n},\ndata:  "job": "x"}}\n\n'.encode())

    def log_message(self, *args) -> None:
        pass


def test_close_delimited_stream_reconnects_from_the_last_id():
    _FlakyStream.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyStream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sleeps = Sleeps()
        client = CronClient(http("cron", sleeps), f"http://127.0.0.1:{server.server_address[1]}", sleep=sleeps)
        events = list(client.stream(last_event_id=None, max_events=5))
    finally:
        server.shutdown()
        server.server_close()
    assert events == [{"seq": n, "job": "x"} for n in range(1, 6)]
    assert _FlakyStream.seen == [None, "2", "4"]
    assert sleeps == [0.25, 0.25] and client.heartbeats == 3  # one keep-alive comment per connection
