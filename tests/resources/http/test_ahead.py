"""`ordered`: requests in flight side by side, answers read in the order asked; `prefetched`: a
cursor listing's next page asked for while the reader lands the one it has."""

from __future__ import annotations

import threading

import pytest

from resources.http.ahead import ordered, prefetched


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


class Listing:
    """A cursor listing of `pages` pages, recording which were fetched and whether it was closed."""

    def __init__(self, pages: int, broken: int | None = None) -> None:
        self.pages, self.broken = pages, broken
        self.fetched: list[int] = []
        self.asked = threading.Event()
        self.closed = False

    def __iter__(self):
        try:
            for n in range(self.pages):
                if n == self.broken:
                    raise ValueError(f"page {n} is broken")
                self.fetched.append(n)
                if n == 1:
                    self.asked.set()
                yield [n * 10, n * 10 + 1]
        finally:
            self.closed = True


def test_the_next_page_is_fetched_while_the_reader_lands_this_one() -> None:
    listing = Listing(5)
    pages = prefetched(listing)
    assert next(pages) == [0, 1]
    assert listing.asked.wait(5), "page 1 should be asked for while the reader holds page 0"
    assert [node for page in pages for node in page] == [10, 11, 20, 21, 30, 31, 40, 41]
    assert listing.fetched == [0, 1, 2, 3, 4] and listing.closed


def test_a_prefetching_reader_that_stops_early_leaves_at_most_one_page_unread_and_closes_the_listing() -> None:
    listing = Listing(100)
    pages = prefetched(listing)
    assert next(pages) == [0, 1]
    pages.close()
    assert listing.fetched in ([0], [0, 1]) and listing.closed  # page 1: asked for, or cancelled before


def test_an_error_in_a_prefetched_listing_is_raised_at_its_page() -> None:
    got = []
    with pytest.raises(ValueError, match="page 3"):
        for page in prefetched(Listing(10, broken=3)):
            got.append(page[0])
    assert got == [0, 10, 20]
