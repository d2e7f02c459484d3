"""How `CC_*` variables reach `Settings`, and how their mistakes are told.

`Settings` (resources/settings.py) declares the fields; this module holds what sits between them
and the environment: the source an explicit mapping is read from, the names a `.env` file sets,
the warning for an unknown `CC_*` name (a misspelt one would otherwise be silently ignored), and
the one line a bad value gets (`CC_WS_QUEUE_MAX: expected an integer, got '1k'`).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Collection, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource

ENV_FILE = ".env"
PREFIX = "CC_"
UNLIMITED = "unlimited"  # a rate limit that is none (CC_RATE_LIMIT_*)

log = logging.getLogger(__name__)

# `Settings.from_env(mapping)` reads that mapping instead of os.environ and `.env`; the sources
# are chosen per class, so the mapping reaches `settings_customise_sources` through this variable.
EXPLICIT_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("cc_explicit_env", default=None)


class MappingSource(EnvSettingsSource):
    """The variables of one mapping, read as pydantic-settings reads the environment."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {(k if self.case_sensitive else k.lower()): v for k, v in self._environ.items()
                if not (self.env_ignore_empty and v == "")}


def check_rate_limit(value: str) -> str:
    """`value` if it is a limit in limits' syntax ("10/second;600/minute") or `unlimited`."""
    from limits import parse_many

    if value.strip().lower() != UNLIMITED:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError('expected limits like "600/minute" or "10/second;600/minute", or unlimited') from None
    return value


_EXPECTED = {"int_parsing": "expected an integer", "int_from_float": "expected an integer",
             "float_parsing": "expected a number", "bool_parsing": "expected true or false"}


def describe(error: Mapping[str, Any], variable: Callable[[str], str]) -> str:
    """One line for one pydantic error: the variable (`variable` names a field's), the form it
    wants, the value it got."""
    field = str(error["loc"][0]) if error["loc"] else "?"
    name = field if field.startswith(PREFIX) else variable(field)
    kind = error["type"]
    if kind in _EXPECTED:
        expected = _EXPECTED[kind]
    elif kind == "literal_error":
        expected = "expected " + str(error["ctx"]["expected"]).replace("'", "")
    elif kind == "value_error":
        expected = str(error["ctx"]["error"])
    else:  # bounds (greater_than_equal, ...): pydantic's own words say it well
        expected = "expected a value " + error["msg"].removeprefix("Input should be ")
    return f"{name}: {expected}, got {error['input']!r}"


def dotenv_names() -> dict[str, str]:
    """The variables the `.env` file in the working directory sets (none without one)."""
    if not Path(ENV_FILE).is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(ENV_FILE).items()}


_warned: set[str] = set()


def warn_unknown(environ: Mapping[str, str], known: Collection[str]) -> None:
    """Warn once per process about each `CC_*` name in `environ` that is not in `known`."""
    for name in sorted(n for n in environ if n.startswith(PREFIX) and n not in known and n not in _warned):
        _warned.add(name)
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        log.warning("unknown variable %s%s: ignored", name, hint)
