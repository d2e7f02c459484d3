"""Pages are read, and records written to `_raw`, exactly as the standard library's json did."""

import json
import random
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler

import pytest

from resources.http.client import HttpClient, MalformedPage, dumps


def _json_dumps(record) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True, default=str)


class Login(str):
    """A subclass of str, which json writes as the plain string."""


TRICKY = [
    {"title": "Café ☕ naïve — 日本語 😀", "del": "a\x7fb", "controls": "".join(map(chr, range(32))),
     "separators": "\u2028\u2029", "quote": 'say "hi" \\ /'},
    {"small": [1e-05, 2.5e-07, 5e-324, -1.5e-10, 0.0001, 0.00012], "large": [1e16, 1.2345678901234568e17, 1e22],
     "plain": [0.1, -0.0, 100.0, 1234567.125]},
    {"id": "ab2cd31e-e315-4288-9e21-1e1e1e1e1e1e", "text": "1e-5, see 0.00001"},
    {"big": 2**70, "negative": -(2**64), "u64": 2**64 - 1, "i64": -(2**63)},
    {"at": datetime(2026, 12, 7, 10, 0, 1), "day": date(2026, 12, 7), "context": {"pull_number": 7}},
    {2: "int keys", 1: None},
    {"login": Login("octocat"), "nested": {"z": [True, False, None], "a": {"é": 1, "e": 2, "😀": 3, "\uffff": 4}}},
    {"lone": "\ud800 surrogate"},
    [1e-07],
    1e-07,
]


@pytest.mark.parametrize("record", TRICKY, ids=range(len(TRICKY)))
def test_a_record_is_written_byte_for_byte_as_json_dumps_writes_it(record):
    assert dumps(record) == _json_dumps(record)


def test_random_records_are_written_as_json_dumps_writes_them():
    rng = random.Random(16)
    planes = [(0x20, 0x7F), (0, 0x20), (0x7E, 0x100), (0x100, 0xD800), (0xE000, 0x10000), (0x10000, 0x110000)]

    def text() -> str:
        return "".join(chr(rng.randrange(*rng.choice(planes))) for _ in range(rng.randint(0, 6)))

    def value(depth: int):
        pick = rng.random()
        if depth > 2 or pick < 0.6:
            return rng.choice([None, True, rng.randint(-2**63, 2**63), rng.uniform(-1, 1) * 10 ** rng.randint(-12, 20),
                               round(rng.uniform(-1e6, 1e6), rng.randint(0, 6)), text()])
        if pick < 0.8:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {text(): value(depth + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(3000):
        record = {text(): value(0) for _ in range(rng.randint(1, 5))}
        assert dumps(record) == _json_dumps(record)


BODIES = {
    "/unicode": ("utf-8", '{"title": "Café 😀", "n": [1, 2.5, 1e-07]}'),
    "/nan": ("utf-8", '{"score": NaN, "top": Infinity}'),
    "/big": ("utf-8", '{"id": 123456789012345678901234567890}'),
    "/big-in-list": ("utf-8", '{"sha": "1234567890123456789012345678901234567890", "ids": [1,-123456789012345678901]}'),
    "/latin1": ("latin-1", '{"name": "Zoë"}'),
}


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/broken":
            charset, body = "utf-8", b'{"cut": '
        else:
            charset, text = BODIES[self.path]
            body = text.encode(charset)
        self.send_response(200)
        self.send_header("Content-Type", f"application/json; charset={charset}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)



@pytest.fixture(scope="module")
def pages(serve):
    return serve(_Pages)


@pytest.mark.parametrize("path", sorted(BODIES))
def test_a_page_is_parsed_as_the_standard_library_parses_it(pages, path):
    page = HttpClient("test").get(f"{pages}{path}")
    assert json.dumps(page.data) == json.dumps(json.loads(BODIES[path][1]))  # NaN is not equal to itself


def test_a_page_that_is_not_json_is_kept_as_a_malformed_page(pages):
    page = HttpClient("test").get(f"{pages}/broken")
    assert isinstance(page, MalformedPage)
    assert page.reason.startswith("invalid JSON") and page.body == '{"cut": '
