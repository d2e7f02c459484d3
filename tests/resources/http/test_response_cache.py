"""The conditional-request cache: old pages are dropped once a day, not each time it is opened."""

import os
import time
from http.server import BaseHTTPRequestHandler

import pytest

from resources.http.response_cache import revalidating_session


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'[{"number": 1}]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)



@pytest.fixture(scope="module")
def url(serve):
    return serve(_Page) + "/repos/acme/api/pulls"


def test_old_pages_are_dropped_at_the_first_opening_of_the_day_only(url, tmp_path):
    path = tmp_path / "github_responses.sqlite"
    old = 1e-8  # days: every page is old by the next opening
    revalidating_session(path, max_age_days=old).get(url)  # pruned (nothing yet), then a page kept
    assert len(revalidating_session(path, max_age_days=old).cache.responses) == 1, "pruned twice in a day"

    a_day_ago = time.time() - 86_401
    os.utime(path.with_name(f"{path.name}.pruned"), (a_day_ago, a_day_ago))
    assert len(revalidating_session(path, max_age_days=old).cache.responses) == 0, "a day later: pruned again"
