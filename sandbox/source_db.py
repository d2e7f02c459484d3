"""The sandbox's business database: 'Supabase'-style todos and system state, trading P&L and signals.

`create_business_schema` builds the four tables (REPLICA IDENTITY FULL, so logical replication
carries the whole old row of updates and deletes), `seed` fills them with deterministic rows and
`ChangeGenerator` applies a seeded, realistic mix of inserts, updates and deletes in
transactions, logging every change it made: the ground truth for CDC tests, the demo and
benchmarks. Timestamps come from a logical clock, not `now()`, so a seed always gives the same
rows.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

TABLES = ("todos", "system_state", "trades", "signals")
# Each table's primary key column.
KEYS = {"todos": "id", "system_state": "key", "trades": "id", "signals": "id"}

EPOCH = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

_DDL = """
create table if not exists {schema}.todos (
    id bigint primary key,
    title text not null,
    status text not null check (status in ('todo', 'in_progress', 'done', 'cancelled')),
    assignee text,
    priority smallint not null default 3,
    is_blocked boolean not null default false,
    due_on date,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create table if not exists {schema}.system_state (
    key text primary key,
    value jsonb not null,
    updated_at timestamptz not null
);
create table if not exists {schema}.trades (
    id bigint primary key,
    symbol text not null,
    side text not null check (side in ('buy', 'sell')),
    qty numeric(18, 6) not null,
    price numeric(18, 6) not null,
    pnl numeric(18, 2),
    executed_at timestamptz not null,
    mode text not null check (mode in ('paper', 'live'))
);
create table if not exists {schema}.signals (
    id bigint primary key,
    symbol text not null,
    signal text not null check (signal in ('buy', 'sell', 'hold')),
    strength double precision not null,
    created_at timestamptz not null
);
"""

_PEOPLE = ("ada", "grace", "linus", "margaret", "ken", None)
_VERBS = ("Fix", "Write", "Review", "Ship", "Refactor", "Document", "Investigate", "Plan")
_THINGS = ("login flow", "billing export", "dashboard lag", "CDC lander", "rate limiter", "runbook",
           "alerting rules", "trade reconciler", "signal backtest", "on-call rota")
_SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "BTC-USD", "ETH-USD", "SPY", "QQQ")
_STATE_KEYS = ("scheduler.paused", "risk.max_position", "risk.max_drawdown", "feature.live_trading",
               "sync.last_run", "bot.version", "alerts.muted_until", "cache.warm")
_NEXT_STATUS = {"todo": ("in_progress", "cancelled"), "in_progress": ("done", "todo"),
                "done": ("todo",), "cancelled": ("todo",)}


def create_business_schema(conn: psycopg.Connection, schema: str = "public") -> None:
    """The four business tables in `schema`, each with REPLICA IDENTITY FULL."""
    ident = sql.Identifier(schema)
    conn.execute(sql.SQL("create schema if not exists {}").format(ident))
    for statement in filter(str.strip, _DDL.split(";")):
        conn.execute(sql.SQL(statement).format(schema=ident))
    for table in TABLES:
        conn.execute(sql.SQL("alter table {} replica identity full").format(sql.Identifier(schema, table)))
    conn.commit()


def _money(rng: random.Random, low: float, high: float, places: int) -> Decimal:
    return Decimal(str(round(rng.uniform(low, high), places)))


class _Rows:
    """Deterministic row contents; shared by `seed` and `ChangeGenerator`."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def todo(self, id_: int, at: datetime) -> dict[str, Any]:
        rng = self.rng
        return {"id": id_, "title": f"{rng.choice(_VERBS)} {rng.choice(_THINGS)}",
                "status": rng.choice(("todo", "todo", "in_progress", "done")),
                "assignee": rng.choice(_PEOPLE), "priority": rng.randint(0, 4),
                "is_blocked": rng.random() < 0.1,
                "due_on": None if rng.random() < 0.4 else (at + timedelta(days=rng.randint(1, 30))).date(),
                "created_at": at, "updated_at": at}

    def state_value(self, key: str, at: datetime) -> str:
        rng = self.rng
        value: Any = {"scheduler.paused": lambda: rng.random() < 0.2,
                      "feature.live_trading": lambda: rng.random() < 0.5,
                      "risk.max_position": lambda: rng.randint(1, 50) * 1000,
                      "risk.max_drawdown": lambda: round(rng.uniform(0.02, 0.2), 3),
                      "bot.version": lambda: f"1.{rng.randint(0, 9)}.{rng.randint(0, 20)}"}.get(
            key, lambda: {"at": at.isoformat(), "n": rng.randint(0, 999)})()
        return json.dumps({"value": value, "set_by": rng.choice(("ada", "grace", "scheduler"))})

    def trade(self, id_: int, at: datetime) -> dict[str, Any]:
        rng = self.rng
        return {"id": id_, "symbol": rng.choice(_SYMBOLS), "side": rng.choice(("buy", "sell")),
                "qty": _money(rng, 0.1, 500, 4), "price": _money(rng, 5, 90_000, 2),
                "pnl": None if rng.random() < 0.3 else _money(rng, -2500, 4000, 2),
                "executed_at": at, "mode": "live" if rng.random() < 0.25 else "paper"}

    def signal(self, id_: int, at: datetime) -> dict[str, Any]:
        rng = self.rng
        return {"id": id_, "symbol": rng.choice(_SYMBOLS), "signal": rng.choice(("buy", "sell", "hold")),
                "strength": round(rng.random(), 4), "created_at": at}


def _insert(conn: psycopg.Connection, schema: str, table: str, row: dict[str, Any]) -> None:
    conn.execute(sql.SQL("insert into {} ({}) values ({})").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row))), list(row.values()))


def seed(conn: psycopg.Connection, seed: int = 7, schema: str = "public", todos: int = 40,
         trades: int = 60, signals: int = 40) -> dict[str, int]:
    """Deterministic starting rows in one transaction; row counts per table."""
    rows = _Rows(random.Random(seed))
    for i in range(1, todos + 1):
        _insert(conn, schema, "todos", rows.todo(i, EPOCH - timedelta(hours=todos - i)))
    for key in _STATE_KEYS[:6]:
        conn.execute(sql.SQL("insert into {} (key, value, updated_at) values (%s, %s, %s)").format(
            sql.Identifier(schema, "system_state")), (key, rows.state_value(key, EPOCH), EPOCH))
    for i in range(1, trades + 1):
        _insert(conn, schema, "trades", rows.trade(i, EPOCH - timedelta(minutes=7 * (trades - i))))
    for i in range(1, signals + 1):
        _insert(conn, schema, "signals", rows.signal(i, EPOCH - timedelta(minutes=11 * (signals - i))))
    conn.commit()
    return {"todos": todos, "system_state": 6, "trades": trades, "signals": signals}


def setup_source_db(dsn: str, seed_value: int = 7, schema: str = "public") -> dict[str, int]:
    """Create and seed the business schema in the database at `dsn`."""
    with psycopg.connect(dsn) as conn:
        create_business_schema(conn, schema)
        return seed(conn, seed_value, schema)


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """One row change the generator made: what a CDC consumer must see, in this order."""

    table: str
    op: str  # insert | update | delete
    key: Any  # the primary key value


# How often each table and operation is picked: todos churn most, trades mostly arrive and get
# marked to market, signals arrive and expire, system state is mostly overwritten.
_TABLE_WEIGHTS = {"todos": 35, "trades": 25, "signals": 25, "system_state": 15}
_OP_WEIGHTS = {"todos": (40, 45, 15), "trades": (55, 40, 5), "signals": (50, 25, 25),
               "system_state": (15, 75, 10)}


class ChangeGenerator:
    """Seeded inserts, updates and deletes, one transaction per `step`, against the business tables."""

    def __init__(self, dsn: str, seed: int = 11, schema: str = "public", clock_step: timedelta = timedelta(seconds=30)):
        self.schema = schema
        self.conn = psycopg.connect(dsn)
        self.rng = random.Random(seed)
        self._rows = _Rows(self.rng)
        self._clock = EPOCH
        self._clock_step = clock_step
        self.keys: dict[str, list[Any]] = {}
        for table in TABLES:
            column = sql.Identifier(KEYS[table])
            self.keys[table] = [r[0] for r in self.conn.execute(sql.SQL("select {} from {} order by {}").format(
                column, sql.Identifier(schema, table), column)).fetchall()]
        self.conn.commit()
        self._next_id = {t: max((k for k in self.keys[t] if isinstance(k, int)), default=0) + 1 for t in TABLES}
        self.log: list[list[AppliedChange]] = []  # every committed transaction, in commit order

    def __enter__(self) -> ChangeGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    @property
    def changes(self) -> list[AppliedChange]:
        return [c for txn in self.log for c in txn]

    def run(self, transactions: int, max_changes: int = 4) -> list[list[AppliedChange]]:
        return [self.step(max_changes) for _ in range(transactions)]

    def step(self, max_changes: int = 4) -> list[AppliedChange]:
        """One committed transaction of 1..`max_changes` row changes."""
        rng = self.rng
        keys = {t: list(v) for t, v in self.keys.items()}
        next_id = dict(self._next_id)
        applied: list[AppliedChange] = []
        try:
            for _ in range(rng.randint(1, max_changes)):
                self._clock += self._clock_step
                table = rng.choices(list(_TABLE_WEIGHTS), weights=list(_TABLE_WEIGHTS.values()))[0]
                op = rng.choices(("insert", "update", "delete"), weights=_OP_WEIGHTS[table])[0]
                if op != "insert" and not keys[table]:
                    op = "insert"
                if table == "system_state" and op == "insert":
                    free = [k for k in (*_STATE_KEYS, *(f"flag.{i}" for i in range(100))) if k not in keys[table]]
                    key = free[0]
                elif op == "insert":
                    key = next_id[table]
                    next_id[table] += 1
                else:
                    key = rng.choice(keys[table])
                getattr(self, f"_{op}")(table, key)
                if op == "insert":
                    keys[table].append(key)
                elif op == "delete":
                    keys[table].remove(key)
                applied.append(AppliedChange(table, op, key))
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        self.keys, self._next_id = keys, next_id
        self.log.append(applied)
        return applied

    def _table(self, table: str) -> sql.Identifier:
        return sql.Identifier(self.schema, table)

    def _insert(self, table: str, key: Any) -> None:
        at, rows = self._clock, self._rows
        if table == "system_state":
            self.conn.execute(sql.SQL("insert into {} (key, value, updated_at) values (%s, %s, %s)").format(
                self._table(table)), (key, rows.state_value(key, at), at))
            return
        _insert(self.conn, self.schema, table, getattr(rows, table.rstrip("s"))(key, at))

    def _update(self, table: str, key: Any) -> None:
        rng, at, t = self.rng, self._clock, self._table(table)
        if table == "todos":
            status = self.conn.execute(sql.SQL("select status from {} where id = %s").format(t), (key,)).fetchone()[0]
            self.conn.execute(sql.SQL(
                "update {} set status = %s, assignee = coalesce(%s, assignee), is_blocked = %s,"
                " updated_at = %s where id = %s").format(t),
                (rng.choice(_NEXT_STATUS[status]), rng.choice(_PEOPLE), rng.random() < 0.1, at, key))
        elif table == "trades":
            self.conn.execute(sql.SQL("update {} set pnl = %s where id = %s").format(t),
                              (_money(rng, -2500, 4000, 2), key))
        elif table == "signals":
            self.conn.execute(sql.SQL("update {} set strength = %s where id = %s").format(t),
                              (round(rng.random(), 4), key))
        else:
            self.conn.execute(sql.SQL("update {} set value = %s, updated_at = %s where key = %s").format(t),
                              (self._rows.state_value(key, at), at, key))

    def _delete(self, table: str, key: Any) -> None:
        self.conn.execute(sql.SQL("delete from {} where {} = %s").format(
            self._table(table), sql.Identifier(KEYS[table])), (key,))

