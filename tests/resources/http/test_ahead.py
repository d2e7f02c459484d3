"""`ordered`: requests in flight side by side, answers read in the order asked."""

from __future__ import annotations

import threading

import pytest

from resources.http.ahead import ordered


class Server:
    """Answers each request only once `gate` opens, counting how many wait at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting = 0
        self.most = 0
        self.gate = threading.Event()
        self.started: list[int] = []

    def fetch(self, n: int) -> int:
        with self.lock:
            self.waiting += 1
            self.most = max(self.most, self.waiting)
            self.started.append(n)
            if self.waiting >= 2:
                self.gate.set()
        self.gate.wait(5)
        with self.lock:
            self.waiting -= 1
        return n * n


def test_two_requests_are_in_flight_and_answers_come_back_in_order() -> None:
    server = Server()
    assert list(ordered(server.fetch, range(20), workers=2)) == [n * n for n in range(20)]
    assert server.most == 2, "a second request should be sent while the first is unanswered"


def test_one_worker_is_the_plain_loop() -> None:
    server = Server()
    server.gate.set()
    assert list(ordered(server.fetch, range(5), workers=1)) == [0, 1, 4, 9, 16]
    assert server.most == 1


def test_never_more_than_the_window_ahead_of_the_reader() -> None:
    server = Server()
    server.gate.set()
    results = ordered(server.fetch, range(100), workers=3)
    assert next(results) == 0
    assert len(server.started) <= 4, f"fetched {len(server.started)} ahead of a reader that took one"
    results.close()


def test_an_error_is_raised_at_its_item() -> None:
    def fetch(n: int) -> int:
        if n == 3:
            raise ValueError("page 3 is broken")
        return n

    got = []
    with pytest.raises(ValueError, match="page 3"):
        for value in ordered(fetch, range(10), workers=2):
            got.append(value)
    assert got == [0, 1, 2]
