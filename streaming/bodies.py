"""A webhook body's JSON value, and the JSON text it is landed as, checked before anything is claimed.

What the sidecar cannot store must be found out before a delivery id is taken, or the sender's
retry meets "200 duplicate" for a delivery that was never landed. Two things parse here yet
cannot be stored or read back: a lone surrogate escape (`"\\ud800"`: Python's parser takes it,
but it is not Unicode text, so neither the landing line's encoder nor the Parquet writer of the
raw asset can write it), and deep nesting (the landing encoder stops at 254 levels, Python's
parser near 1,000, the raw asset's readers recurse). Both are answered 400 with the reason.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import orjson

# Real payloads are a few levels deep (a GitHub push: under 10). Well under every reader's limit.
MAX_DEPTH = 128


class Unstorable(ValueError):
    """The body cannot be landed as JSON; the message says why, for the sender."""


def _too_deep() -> Unstorable:
    return Unstorable(f"the body is nested more than {MAX_DEPTH} levels deep: it cannot be stored")


def _depth_over(value: Any, limit: int, depth: int = 1) -> bool:
    # Recursive with exact type checks (the fallback of `_deeper_than_max`); bounded by `limit`.
    if depth > limit:
        return True
    for child in (value.values() if type(value) is dict else value):
        if (type(child) is dict or type(child) is list) and _depth_over(child, limit, depth + 1):
            return True
    return False


def _encoder_depth() -> int:
    """The deepest nesting orjson's encoder takes (254 in orjson 3), found once by trying."""
    low, high = 0, 4096
    while low < high:
        middle = (low + high + 1) // 2
        value: Any = 0
        for _ in range(middle):
            value = [value]
        try:
            orjson.dumps(value)
            low = middle
        except orjson.JSONEncodeError:
            high = middle - 1
    return low


# Wrapped in this many lists, a value nested more than MAX_DEPTH levels is past the encoder's limit.
_PAD = _encoder_depth() - MAX_DEPTH
_chains = threading.local()  # per thread: the wrapper lists, made once (5 µs to make each time)


def _deeper_than_max(value: Any) -> bool:
    """Nested more than MAX_DEPTH levels? Asked of orjson's encoder, whose own depth limit is known:
    the value wrapped in `_PAD` lists encodes iff it is shallow enough. The encoder goes through a
    GitHub payload (~160 containers, a thousand values) in 7 µs; the Python walk, 33, and counting
    the body's brackets to skip it, 15, on every webhook's path. The walk stays for what the
    encoder refuses for another reason."""
    if _PAD > 0:
        chain = getattr(_chains, "lists", None)
        if chain is None:
            chain = [None]
            innermost = chain
            for _ in range(_PAD - 1):
                chain = [chain]
            _chains.lists = chain = (chain, innermost)
        outer, innermost = chain
        innermost[0] = value
        try:
            orjson.dumps(outer)
            return False
        except orjson.JSONEncodeError as exc:
            if "Recursion" in str(exc):
                return True
        finally:
            innermost[0] = None
    return _depth_over(value, MAX_DEPTH)


def _check_depth(value: Any) -> None:
    if (type(value) is dict or type(value) is list) and _deeper_than_max(value):
        raise _too_deep()


def encode(value: Any) -> bytes:
    """`value` as one line of JSON text, or `Unstorable` with the reason."""
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError) as exc:
        text = str(exc)
        if "surrogates" in text:
            raise Unstorable("a string in the body holds a lone UTF-16 surrogate escape (such as \\ud800): "
                             "it is not Unicode text and cannot be stored") from exc
        if "Recursion" in text:
            raise _too_deep() from exc
        raise Unstorable(f"the body cannot be stored as JSON: {text}") from exc


def parse(body: bytes) -> tuple[Any, bytes]:
    """The body's JSON value and the one-line JSON text to land it as.

    Strict JSON (orjson's) on one line is landed as it came, which saves encoding a GitHub
    payload (tens of kilobytes) a second time on every webhook's path; anything else is encoded
    once here. Raises `Unstorable` (nested too deep, not Unicode) or `ValueError` (not JSON)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc).lower():
            raise _too_deep() from exc
        # orjson is strict (no NaN, 64-bit integers at most): the standard parser decides.
        try:
            value = json.loads(body)
        except RecursionError as deep:
            raise _too_deep() from deep
        except UnicodeDecodeError as bad:
            raise ValueError(str(bad)) from bad
        _check_depth(value)
        return value, encode(value)
    _check_depth(value)
    if b"\n" in body or b"\r" in body:
        return value, encode(value)
    return value, body
