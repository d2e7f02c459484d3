"""Read timeouts and the connection budget of the launcher (`python -m streaming.serve`): stalled
connections (slowloris) are closed, trickled bodies get 408, and a signed sender is served while
more stalled connections are open than the process has files."""

from __future__ import annotations

import json
import resource
import socket
import time
import uuid

import pytest
import requests

from scripts.chaos.harness import SECRETS, Sidecar, github_headers

PULL_REQUEST = {"action": "opened", "number": 7, "repository": {"full_name": "acme/api"},
                "pull_request": {"number": 7, "title": "t", "state": "open", "user": {"login": "a"},
                                 "created_at": "2026-01-05T10:00:00Z", "updated_at": "2026-01-05T10:00:00Z"}}


@pytest.fixture
def start(tmp_path):
    started: list[Sidecar] = []

    def make(env: dict[str, str], max_open_files: int | None = None) -> Sidecar:
        server = Sidecar(tmp_path / f"data-{len(started)}", {**SECRETS, **env}, max_open_files)
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


def stalled(port: int, first_bytes: bytes = b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first_bytes)
    return sock


def closed_by_server(sock: socket.socket, wait_s: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `wait_s` (and what it sent before)."""
    sock.settimeout(wait_s)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except TimeoutError:
        return False, got
    except ConnectionResetError:
        pass
    return True, got


def test_a_connection_that_never_finishes_its_headers_is_closed(start):
    server = start({"CC_HTTP_HEADER_TIMEOUT_S": "1"})
    silent = socket.create_connection(("127.0.0.1", server.port))  # not one byte
    partial = stalled(server.port)
    # Far past the timeout, so a loaded machine cannot make it flaky; uvicorn alone never closes them.
    assert closed_by_server(partial, 15)[0]
    assert closed_by_server(silent, 15)[0]
    # A complete request on a fresh connection is still served.
    assert requests.get(f"{server.url}/healthz", timeout=10).ok


def test_a_trickled_body_gets_408_and_lands_nothing(start):
    server = start({"CC_HTTP_BODY_TIMEOUT_S": "1"})
    body = json.dumps(PULL_REQUEST).encode()
    headers = github_headers(body, "pull_request")
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"POST /webhooks/github HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode())
    sock.settimeout(0.3)
    answer = b""
    deadline = time.monotonic() + 20  # a bound for the old code, which waits for ever
    for byte in body:
        if time.monotonic() > deadline:
            break
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            answer += sock.recv(65536)
        except TimeoutError:
            continue
        if answer:
            break
    answer += closed_by_server(sock, 10)[1]
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert server.landed() == []
    # The same delivery sent at once is accepted: nothing was claimed for the cut-off copy.
    response = requests.post(f"{server.url}/webhooks/github", data=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text


def test_a_signed_webhook_is_acked_while_more_stalled_connections_are_open_than_the_file_limit(start):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2400:  # this test holds 1,100 sockets itself
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    # The sidecar on a host whose open-file limit is 1,024, with a header timeout longer than the
    # test: only the connection budget can keep room for the sender.
    server = start({"CC_HTTP_HEADER_TIMEOUT_S": "120"}, max_open_files=1024)
    attackers = []
    try:
        for i in range(1100):
            try:
                attackers.append(stalled(server.port, b"GET / HTTP/1.1\r\n" if i % 2 else b""))
            except OSError:
                break  # the server's backlog is full: the attack already holds every slot it can
        assert len(attackers) >= 1024
        body = json.dumps(PULL_REQUEST).encode()
        delivery = str(uuid.uuid4())
        response = requests.post(f"{server.url}/webhooks/github", data=body,
                                 headers=github_headers(body, "pull_request", delivery), timeout=15)
        assert response.status_code == 202, response.text
        assert [line["delivery_id"] for line in server.landed()] == [delivery]
    finally:
        for sock in attackers:
            sock.close()
