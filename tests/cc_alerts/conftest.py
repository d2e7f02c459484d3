"""Real receivers for alert notifications: an SMTP server (aiosmtpd) and an HTTP webhook receiver
on loopback, and the alert store on SQLite and on Postgres."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller

from cc_alerts.store import AlertStore, PostgresAlertStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Inbox:
    url: str  # the Apprise URL that sends here
    messages: list[Message] = field(default_factory=list)

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]

    def body(self, n: int) -> str:
        return self.messages[n].get_body(preferencelist=("plain",)).get_content()


@pytest.fixture
def smtp() -> Iterator[Inbox]:
    """A real SMTP server on loopback; every message it accepts lands in `inbox.messages`."""
    port = free_port()
    inbox = Inbox(f"mailto://127.0.0.1:{port}?from=cc@example.com&to=ops@example.com&mode=insecure")

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            inbox.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@dataclass
class Receiver:
    url: str  # json://... for Apprise
    posts: list[dict] = field(default_factory=list)
    failing: bool = False  # answer 500 while set
    refused: int = 0


@pytest.fixture
def webhook_receiver() -> Iterator[Receiver]:
    """A local HTTP receiver for Apprise's generic JSON webhooks (`json://host:port/path`)."""
    port = free_port()
    receiver = Receiver(f"json://127.0.0.1:{port}/hooks/alerts")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if receiver.failing:
                receiver.refused += 1
                self.send_response(500)
            else:
                receiver.posts.append(json.loads(body))
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path: Path) -> Iterator[AlertStore]:
    """The alert store embedded (SQLite) and on Postgres (a schema of its own per test)."""
    if request.param == "sqlite":
        found = AlertStore(tmp_path / "alerts.sqlite3")
        yield found
        found.close()
        return
    url = request.getfixturevalue("pg_database")
    schema = f"alerts_{uuid.uuid4().hex[:8]}"
    yield PostgresAlertStore(url, schema)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"drop schema if exists {schema} cascade")


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[AlertStore]:
    found = AlertStore(tmp_path / "alerts.sqlite3")
    yield found
    found.close()
