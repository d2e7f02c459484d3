"""The raw lake tables' shape: the flattened columns a source entity carries (docs/contract.md §4).

Each source declares its tables in its module (`cc_events/sources/`), next to the normalizer that
reads the same fields; `cc_events.registry.RAW_TABLES` gathers them. A record is flattened here
once, so the lake, Postgres' `raw` schema and dbt's staging models all see the same columns; a
record that cannot be flattened is schema-invalid (`InvalidRecord`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cc_events.helpers import optional_time
from cc_events.model import InvalidRecord

ColumnType = Literal["str", "int", "float", "time", "json"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    path: tuple[str, ...]  # where in the record; () means "from the fetch context" (extra)
    required: bool = False


def col(name: str, type_: ColumnType, path: str | None = None, required: bool = False) -> Column:
    return Column(name, type_, tuple((path or name).split(".")) if path != "" else (), required)


def ctx_col(name: str, type_: ColumnType, required: bool = False) -> Column:
    return Column(name, type_, (), required)


@dataclass(frozen=True)
class RawTable:
    source: str
    entity: str
    columns: tuple[Column, ...]
    description: str

    @property
    def name(self) -> str:
        return f"{self.source}__{self.entity}"

    def flatten(self, record: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if type(record) is not dict and not isinstance(record, Mapping):
            raise InvalidRecord(f"record is a {type(record).__name__}, not an object")
        extra = extra or {}
        row: dict[str, Any] = {}
        for column in self.columns:
            value: Any = extra.get(column.name) if not column.path else _dig(record, column.path)
            if value in (None, ""):
                if column.required:
                    raise InvalidRecord(f"missing required field {'.'.join(column.path) or column.name}")
                row[column.name] = None
                continue
            row[column.name] = _convert(value, column)
        return row


def raw_json(record: Any) -> str:
    """A record as the raw tables' `_raw` column keeps it: compact JSON, keys sorted."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True, default=str)


def _dig(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path`; a number steps into a list (`pull_requests.0.number`)."""
    value: Any = record
    for part in path:
        if type(value) is dict:  # nearly always: `isinstance(..., Mapping)` is an ABC check, 1 µs each
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else None
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


_CONVERTERS: dict[str, Callable[[Any, str], Any]] = {
    "str": lambda v, _: v if isinstance(v, str) else str(v),
    "int": lambda v, _: int(v),
    "float": lambda v, _: float(v),
    "time": lambda v, name: optional_time(v, name),
    # Nested values (a CDC row image) stay JSON text: the same on DuckDB, Postgres and Parquet.
    "json": lambda v, _: json.dumps(v, sort_keys=True, separators=(",", ":"), default=str),
}


def _convert(value: Any, column: Column) -> Any:
    try:
        return _CONVERTERS[column.type](value, column.name)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(f"{column.name}: cannot read {value!r} as {column.type}") from exc
