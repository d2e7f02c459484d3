"""Postgres logical replication's `pgoutput` protocol 1: LSNs, positions, typed values, the decoder.

Values come from pgoutput's text format, typed by the column's type OID: integers as int, float
types as float, bool as bool, numeric (and everything else) as the exact text Postgres printed,
timestamps as ISO 8601 (timestamptz in UTC), json/jsonb as JSON text, SQL NULL as None.
The reader (resources/ingest/cdc.py) feeds it the stream's messages.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# Type OIDs (pg_type.dat).
_INT_TYPES = frozenset({20, 21, 23, 26, 28, 5069})  # int8, int2, int4, oid, xid, xid8
_FLOAT_TYPES = frozenset({700, 701})
_BOOL, _TIMESTAMP, _TIMESTAMPTZ = 16, 1114, 1184


# --- LSNs and positions -------------------------------------------------------------------------

def parse_lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def format_lsn(value: int) -> str:
    """Zero-padded `XXXXXXXX/XXXXXXXX`: sorts as text and casts to `pg_lsn`."""
    return f"{value >> 32:08X}/{value & 0xFFFFFFFF:08X}"


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """Where a change sits in the commit-ordered stream; unique per change."""

    lsn: int  # the transaction's commit end LSN; for snapshot rows the slot's consistent point
    seq: int

    @classmethod
    def of(cls, change: dict[str, Any]) -> Position:
        return cls(parse_lsn(change["commit_lsn"]), change["seq"])

    def __str__(self) -> str:
        return f"{format_lsn(self.lsn)}#{self.seq}"


# --- values -------------------------------------------------------------------------------------

def decode_value(type_oid: int, text: str) -> Any:
    """A column value from Postgres' text output, typed by the column's type OID."""
    try:
        if type_oid in _INT_TYPES:
            return int(text)
        if type_oid == _BOOL:
            return text in ("t", "true")
        if type_oid in _FLOAT_TYPES:
            return float(text)
        if type_oid == _TIMESTAMPTZ:
            return datetime.fromisoformat(text).astimezone(UTC).isoformat()
        if type_oid == _TIMESTAMP:
            return datetime.fromisoformat(text).isoformat()
    except ValueError:
        pass  # infinity, BC dates, years past 9999: kept as Postgres printed them
    return text


# --- pgoutput decoding --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    schema: str
    table: str
    replica_identity: str  # d default, n nothing, f full, i index
    columns: tuple[Column, ...]

    def describe(self) -> dict[str, Any]:
        return {"oid": self.oid, "schema": self.schema, "table": self.table,
                "replica_identity": self.replica_identity,
                "columns": [[c.name, c.type_oid, c.is_key] for c in self.columns]}


@dataclass(slots=True)
class Transaction:
    xid: int
    final_lsn: int  # start of the commit record (from Begin)
    end_lsn: int = 0  # end of the commit record: the position the slot confirms
    committed_at: str = ""
    changes: list[dict[str, Any]] = field(default_factory=list)


class _Buf:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _unpack(self, fmt: str, size: int) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def byte(self) -> str:
        self.pos += 1
        return chr(self.data[self.pos - 1])

    def int8(self) -> int:
        return self._unpack("!b", 1)

    def int16(self) -> int:
        return self._unpack("!h", 2)

    def int32(self) -> int:
        return self._unpack("!i", 4)

    def uint32(self) -> int:
        return self._unpack("!I", 4)

    def int64(self) -> int:
        return self._unpack("!q", 8)

    def string(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos:end].decode()
        self.pos = end + 1
        return text

    def text(self, n: int) -> str:
        self.pos += n
        return self.data[self.pos - n:self.pos].decode()


_UNCHANGED = object()  # an unchanged TOASTed value: pgoutput does not resend it
_OPS = {"I": "insert", "U": "update", "D": "delete", "T": "truncate"}


def _timestamp(us_since_2000: int) -> str:
    return (_PG_EPOCH + timedelta(microseconds=us_since_2000)).isoformat()


def raw_json(**parts: Any) -> str:
    return json.dumps(parts, separators=(",", ":"), default=str)


def make_change(op: str | None, *, lsn: int, schema: str | None = None, table: str | None = None,
                before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
                unchanged_toast: Sequence[str] = (), raw: str | None = None,
                reason: str | None = None) -> dict[str, Any]:
    """A change dict; `commit_lsn`, `xid`, `committed_at` and `seq` are set when its transaction commits."""
    return {"lsn": format_lsn(lsn), "commit_lsn": None, "xid": None, "committed_at": None,
            "schema": schema, "table": table, "op": op, "before": before, "after": after, "seq": None,
            "unchanged_toast": list(unchanged_toast), "raw": raw, "reason": reason}


class PgOutputDecoder:
    """pgoutput protocol 1 messages in, whole committed transactions of change dicts out."""

    def __init__(self, expected: Iterable[tuple[str, str]] | None = None) -> None:
        self.expected = None if expected is None else frozenset(expected)
        self.relations: dict[int, Relation] = {}
        self._txn: Transaction | None = None

    @property
    def in_transaction(self) -> bool:
        return self._txn is not None

    def discard_open_transaction(self) -> None:
        """Forget a transaction cut off by a lost connection; the server resends it whole."""
        self._txn = None

    def feed(self, payload: bytes, lsn: int) -> Transaction | None:
        """Decode one message (`lsn`: its XLogData start); return the transaction it commits, if any."""
        kind = chr(payload[0])
        buf = _Buf(payload)
        buf.pos = 1
        if kind == "B":
            final_lsn, _, xid = buf.int64(), buf.int64(), buf.uint32()
            self._txn = Transaction(xid=xid, final_lsn=final_lsn)
            return None
        if kind == "C":
            buf.int8()
            _, end_lsn, ts = buf.int64(), buf.int64(), buf.int64()
            txn, self._txn = self._txn, None
            if txn is None:
                raise ValueError(f"Commit at {format_lsn(lsn)} without Begin")
            txn.end_lsn, txn.committed_at = end_lsn, _timestamp(ts)
            for seq, change in enumerate(txn.changes):
                change.update(commit_lsn=format_lsn(end_lsn), xid=txn.xid, committed_at=txn.committed_at,
                              seq=seq)
            return txn
        if kind == "R":
            self._relation(buf)
            return None
        if kind in ("Y", "O"):  # type and origin notes: values are typed by OID, origins unused
            return None
        if self._txn is None:
            raise ValueError(f"pgoutput message {kind!r} at {format_lsn(lsn)} outside a transaction")
        try:
            changes = self._changes(kind, buf, lsn, payload)
        except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
            changes = [make_change(_OPS.get(kind), lsn=lsn, raw=raw_json(message=payload.hex()),
                                   reason=f"undecodable pgoutput message: {exc}")]
        self._txn.changes.extend(changes)
        return None

    def _relation(self, buf: _Buf) -> None:
        oid, schema, table = buf.uint32(), buf.string(), buf.string()
        identity = buf.byte()
        columns = []
        for _ in range(buf.int16()):
            flags, name, type_oid = buf.int8(), buf.string(), buf.uint32()
            buf.int32()  # atttypmod
            columns.append(Column(name, type_oid, bool(flags & 1)))
        self.relations[oid] = Relation(oid, schema, table, identity, tuple(columns))

    def _unknown(self, relid: int) -> tuple[Relation | None, str | None]:
        rel = self.relations.get(relid)
        if rel is None:
            return None, f"no Relation message for relation oid {relid}"
        if self.expected is not None and (rel.schema, rel.table) not in self.expected:
            return rel, f"table {rel.schema}.{rel.table} is not one of the expected tables"
        return rel, None

    def _changes(self, kind: str, buf: _Buf, lsn: int, payload: bytes) -> list[dict[str, Any]]:
        if kind == "T":
            nrels, options = buf.int32(), buf.int8()
            changes = []
            for relid in [buf.uint32() for _ in range(nrels)]:
                rel, reason = self._unknown(relid)
                if reason:
                    changes.append(make_change(
                        "truncate", lsn=lsn, schema=rel and rel.schema, table=rel and rel.table,
                        raw=raw_json(message=payload.hex(), relid=relid, options=options,
                                 relation=rel and rel.describe()), reason=reason))
                else:
                    changes.append(make_change("truncate", lsn=lsn, schema=rel.schema, table=rel.table))
            return changes
        if kind not in ("I", "U", "D"):
            return [make_change(None, lsn=lsn, raw=raw_json(message=payload.hex()),
                                reason=f"unknown pgoutput message type {kind!r}")]
        relid = buf.uint32()
        rel, reason = self._unknown(relid)
        tuples: dict[str, list[str | None]] = {}
        old_kind, old, new = None, None, None
        marker = buf.byte()
        if marker in ("K", "O"):
            old_kind, old = marker, self._tuple_text(buf)
            if kind == "U":
                marker = buf.byte()
        if marker == "N":
            new = self._tuple_text(buf)
        op = _OPS[kind]
        if reason:
            if old is not None:
                tuples["old"] = old
            if new is not None:
                tuples["new"] = new
            return [make_change(op, lsn=lsn, schema=rel and rel.schema, table=rel and rel.table,
                                raw=raw_json(message=payload.hex(), relation=rel and rel.describe(), **tuples),
                                reason=reason)]
        before = None if old is None else self._values(rel, old, keys_only=old_kind == "K")
        after = None if new is None else self._values(rel, new)
        unchanged = []
        if after is not None:
            for name, value in list(after.items()):
                if value is _UNCHANGED:
                    # REPLICA IDENTITY FULL sends the old row whole: the unchanged value is known.
                    if before is not None and name in before and before[name] is not _UNCHANGED:
                        after[name] = before[name]
                    else:
                        del after[name]
                        unchanged.append(name)
        if before is not None:
            before = {k: v for k, v in before.items() if v is not _UNCHANGED}
        return [make_change(op, lsn=lsn, schema=rel.schema, table=rel.table, before=before, after=after,
                            unchanged_toast=unchanged)]

    @staticmethod
    def _tuple_text(buf: _Buf) -> list[Any]:
        values: list[Any] = []
        for _ in range(buf.int16()):
            kind = buf.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(_UNCHANGED)
            elif kind == "t":
                values.append(buf.text(buf.int32()))
            else:
                raise ValueError(f"unknown tuple column kind {kind!r}")
        return values

    @staticmethod
    def _values(rel: Relation, texts: list[Any], keys_only: bool = False) -> dict[str, Any]:
        if len(texts) != len(rel.columns):
            raise ValueError(f"{len(texts)} values for the {len(rel.columns)} columns of {rel.schema}.{rel.table}")
        return {
            col.name: text if text is None or text is _UNCHANGED else decode_value(col.type_oid, text)
            for col, text in zip(rel.columns, texts, strict=True)
            if col.is_key or not keys_only
        }
