"""One HTTP mechanism for every source client: session reuse, retries and rate limits.

Retries use exponential backoff with jitter, but a server's own word wins: `Retry-After`
(seconds or an HTTP date) and, when a rate limit is spent, `X-RateLimit-Reset` (GitHub) or
`X-RateLimit-Requests-Reset` (Linear, epoch ms). A page whose body is not JSON is not retried
(the server answered), it is handed back as a `MalformedPage` for the dead-letter store.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import requests

from resources.http.circuit import CircuitBreaker
from resources.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class SourceUnavailable(RuntimeError):
    """A source kept failing after every retry; the message says which and why."""


class CircuitOpen(SourceUnavailable):
    """The source's circuit breaker is open: no request was sent."""


class NotFound(SourceUnavailable):
    """The source answered 404: what was asked for is gone (deleted, transferred) or never was."""


class RateLimited(SourceUnavailable):
    """The source's budget is spent until a reset further off than the client will wait."""


@dataclass(frozen=True)
class MalformedPage:
    """A 200 response whose body could not be parsed; kept whole for the dead-letter store."""

    url: str
    reason: str
    body: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Page:
    url: str
    status: int
    data: Any
    headers: Mapping[str, str]
    from_cache: bool = False  # a 304 answered a conditional request: this is the cached copy

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - now) if parsed else None


def rate_limit_wait(response: requests.Response, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait before the next call, or None if it did not say."""
    now = time.time() if now is None else now
    headers = response.headers
    retry_after = _retry_after_seconds(headers.get("Retry-After"), now)
    if retry_after is not None:
        return retry_after
    if headers.get("X-RateLimit-Remaining") == "0" and headers.get("X-RateLimit-Reset"):
        return max(0.0, float(headers["X-RateLimit-Reset"]) - now) + 1.0
    return budget_wait(headers, now)


def budget_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until the budget the last response reported can pay for another request like it.

    GitHub: `X-RateLimit-Remaining` 0 until `X-RateLimit-Reset` (epoch s). Linear: requests
    remaining 0, or fewer complexity points left than the last query cost (`X-Complexity`), until
    the matching `X-RateLimit-*-Reset` (epoch ms). None: there is budget left.
    """
    now = time.time() if now is None else now
    if headers.get("X-RateLimit-Remaining") == "0" and headers.get("X-RateLimit-Reset"):
        return max(0.0, float(headers["X-RateLimit-Reset"]) - now) + 1.0
    if headers.get("X-RateLimit-Requests-Remaining") == "0" and headers.get("X-RateLimit-Requests-Reset"):
        return max(0.0, float(headers["X-RateLimit-Requests-Reset"]) / 1000.0 - now) + 1.0
    remaining, cost = headers.get("X-RateLimit-Complexity-Remaining"), headers.get("X-Complexity")
    reset = headers.get("X-RateLimit-Complexity-Reset")
    if remaining and cost and reset and float(remaining) < float(cost):
        return max(0.0, float(reset) / 1000.0 - now) + 1.0
    return None


def _is_rate_limited(response: requests.Response) -> bool:
    if response.status_code == 429:
        return True
    # Linear refuses a query its budget cannot pay for with a GraphQL error coded RATELIMITED.
    if response.status_code == 400 and b"RATELIMITED" in response.content:
        return True
    # GitHub answers 403 both for "forbidden" and for spent primary/secondary limits.
    return response.status_code == 403 and (
        response.headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in response.headers
    )


class HttpClient:
    """A `requests.Session` with the platform's retry policy, shared by a client's calls."""

    def __init__(
        self,
        source: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.source = source
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self.breaker = breaker
        self._random = random.Random()
        self.session = requests.Session()
        self.session.headers.update({"User-Agent": "command-center/0.1", "Accept": "application/json"})
        self.session.headers.update(headers or {})
        self.requests_made = 0
        self.retries = 0
        self.budget_waits = 0  # pauses taken because the last response said the budget was spent
        self._not_before = 0.0

    @classmethod
    def from_settings(cls, source: str, settings: Settings, headers: Mapping[str, str] | None = None) -> HttpClient:
        """The platform's policy for `source`: retries, timeouts and the shared circuit breaker."""
        breaker = CircuitBreaker(source, settings.state_dir / "circuits", settings.circuit_failures,
                                 settings.circuit_open_s)
        return cls(source, headers=headers, timeout_s=settings.http_timeout_s, max_retries=settings.http_max_retries,
                   backoff_s=settings.http_backoff_s, max_backoff_s=settings.http_max_backoff_s, breaker=breaker)

    def close(self) -> None:
        self.session.close()

    def sibling(self) -> HttpClient:
        """Another client with this one's policy, headers and circuit breaker but its own rate-limit
        state: for an API whose budget is counted apart (GitHub's GraphQL points beside its REST
        requests), so one spent budget does not hold back calls to the other."""
        return HttpClient(self.source, headers=dict(self.session.headers), timeout_s=self.timeout_s,
                          max_retries=self.max_retries, backoff_s=self.backoff_s, max_backoff_s=self.max_backoff_s,
                          sleep=self._sleep, breaker=self.breaker)

    def use_session(self, session: requests.Session) -> None:
        """Send through `session` (a caching one) from now on, with this client's headers."""
        session.headers.update(self.session.headers)
        self.session.close()
        self.session = session

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * (2**attempt)) * (0.5 + self._random.random() / 2)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Page | MalformedPage:
        last_problem = "no attempt made"
        for attempt in range(self.max_retries + 1):
            wait: float | None = None
            refusal = self.breaker.refusal() if self.breaker else None
            if refusal:
                raise CircuitOpen(f"{self.source}: {method} {_safe(url)} not sent: {refusal}")
            self._pace(method, url)
            try:
                self.requests_made += 1
                response = self.session.request(
                    method, url, params=params, json=json_body, headers=headers, timeout=self.timeout_s
                )
            except requests.RequestException as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
                self._health(ok=False, problem=last_problem)
            else:
                pause = budget_wait(response.headers)
                self._not_before = time.time() + pause if pause else 0.0
                # Rate limits are the source asking us to wait, not the source failing.
                if response.status_code < 500:
                    self._health(ok=True)
                else:
                    self._health(ok=False, problem=f"HTTP {response.status_code}")
                if response.status_code == 304:
                    return Page(response.url, 304, None, response.headers)
                if response.ok:
                    try:
                        data = _json_body(response)
                    except ValueError as exc:
                        return MalformedPage(response.url, f"invalid JSON: {exc}", response.text, response.headers)
                    return Page(response.url, response.status_code, data, response.headers,
                                from_cache=bool(getattr(response, "from_cache", False)))
                last_problem = f"HTTP {response.status_code}: {response.text[:200]}"
                if _is_rate_limited(response):
                    wait = rate_limit_wait(response)
                    if wait is not None and wait > self.max_backoff_s:
                        raise RateLimited(f"{self.source}: rate limit spent, it resets in {wait:.0f} s; "
                                          f"{method} {_safe(url)} not retried before then")
                elif response.status_code not in RETRYABLE_STATUS:
                    error = NotFound if response.status_code == 404 else SourceUnavailable
                    raise error(f"{self.source}: {method} {_safe(url)} failed: {last_problem}")
                else:
                    wait = rate_limit_wait(response)
            if attempt == self.max_retries:
                break
            delay = self._backoff(attempt) if wait is None else min(wait, self.max_backoff_s)
            self.retries += 1
            log.warning("%s: %s %s: %s; retry %d in %.1fs", self.source, method, _safe(url), last_problem,
                        attempt + 1, delay)
            self._sleep(delay)
            self._not_before = 0.0  # that wait was the one the headers asked for
        raise SourceUnavailable(
            f"{self.source}: {method} {_safe(url)} failed after {self.max_retries + 1} attempts: {last_problem}"
        )

    def _pace(self, method: str, url: str) -> None:
        """Wait for the budget the last response reported spent; refuse if that is too far off."""
        pause = self._not_before - time.time()
        if pause <= 0:
            return
        if pause > self.max_backoff_s:
            raise RateLimited(f"{self.source}: rate budget spent for {pause:.0f} s more (the last response's "
                              f"headers); {method} {_safe(url)} not sent")
        self.budget_waits += 1
        log.info("%s: rate budget spent, waiting %.1fs for its reset", self.source, pause)
        self._sleep(pause)

    def pause(self, seconds: float, why: str) -> None:
        """Wait for a budget the source reported in a response's body (GitHub GraphQL's `rateLimit`):
        the caller knows the reset and has chosen to wait for it, however far off."""
        self.budget_waits += 1
        log.info("%s: %s, waiting %.1fs", self.source, why, seconds)
        self._sleep(seconds)

    def _health(self, ok: bool, problem: str = "") -> None:
        if self.breaker is None:
            return
        if ok:
            self.breaker.record_success()
        else:
            self.breaker.record_failure(problem)

    def get(self, url: str, **kwargs: Any) -> Page | MalformedPage:
        return self.request("GET", url, **kwargs)

    def post_json(self, url: str, body: Any, **kwargs: Any) -> Page | MalformedPage:
        return self.request("POST", url, json_body=body, **kwargs)


def _safe(url: str) -> str:
    """The URL without its query string, which may carry tokens on some APIs."""
    return url.split("?", 1)[0]


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TWENTY_DIGITS = b"0" * 20  # no integer of 64 bits has more than 20 digits


def _may_hold_big_int(body: bytes) -> bool:
    """A run of 20 digits or more that starts a number (after `:`, `[`, `,`, `-` or a space), not
    one inside a hex string such as a commit SHA: an integer orjson would read as a float."""
    digits = body.translate(_DIGITS_AS_ZERO)
    at = digits.find(_TWENTY_DIGITS)
    while at >= 0:
        start = at
        while start and digits[start - 1] == 48:
            start -= 1
        if not start or body[start - 1] in b":[,- \t\r\n":
            return True
        at = digits.find(_TWENTY_DIGITS, at + 20)
    return False


def _json_body(response: requests.Response) -> Any:
    """The body as JSON. orjson parses a listing page in half the standard library's time; a body
    it refuses (NaN, lone surrogates), one declared in another charset, and one that may hold an
    integer past 64 bits (which orjson would read as a float) go through `response.json()` as
    before, so what parses, and to what, is unchanged."""
    body = response.content
    if (response.encoding or "utf-8").lower() in ("utf-8", "utf8") and not _may_hold_big_int(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return response.json()


# `dumps` writes what `json.dumps(record, separators=(",", ":"), sort_keys=True, default=str)` writes,
# byte for byte, for what a parsed JSON record and its fetch context hold (the `_raw` of every landed
# row), in under half the time. Where orjson writes otherwise it is corrected or not used: it leaves
# non-ASCII (and DEL) unescaped, so that is escaped afterwards; it writes a float under 1e-4 as
# `0.00001` or `2.5e-7` where json writes `1e-05` and `2.5e-07`, so output that may hold one goes
# through json, as does what orjson refuses (non-string keys, integers past 64 bits, lone surrogates)
# or would write its own way (subclasses of the JSON types). Left apart, as no parsed record holds
# them: a NaN or infinite float (`null` here, `NaN` in json) and an Enum (its value here).
_ORJSON_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_SUBCLASS)
_NOT_ASCII = re.compile("[\x7f-\U0010ffff]")


def _stdlib_dumps(record: Any) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True, default=str)


def _may_hold_small_float(data: bytes) -> bool:
    """`0.0000`, or a number ending in `e-<digits>` (a digit before the `e`; `,` `}` `]` or the end after the
    digits), anywhere, in a string too: a UUID's `1e-4a2f-` is not one. `find` is ten times a regex."""
    if b"0.0000" in data:
        return True
    at = data.find(b"e-")
    while at >= 0:
        end = at + 2
        while end < len(data) and 48 <= data[end] <= 57:
            end += 1
        if at and 48 <= data[at - 1] <= 57 and end > at + 2 and data[end:end + 1] in (b",", b"}", b"]", b""):
            return True
        at = data.find(b"e-", at + 2)
    return False


def _as_str(value: Any) -> str:
    if isinstance(value, (str, int, float, list, tuple, dict)):
        raise TypeError("a subclass of a JSON type: json writes it as its base type")
    return str(value)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def dumps(record: Any) -> str:
    """A record as compact JSON with sorted keys, exactly as `json.dumps` writes it (see above)."""
    try:
        data = orjson.dumps(record, default=_as_str, option=_ORJSON_OPTIONS)
    except TypeError:
        return _stdlib_dumps(record)
    if _may_hold_small_float(data):
        return _stdlib_dumps(record)
    text = data.decode()
    if not data.isascii() or b"\x7f" in data:
        text = _NOT_ASCII.sub(_escape, text)
    return text
