"""Batched, idempotent writes: INSERT … ON CONFLICT DO UPDATE on PostgreSQL and SQLite.

Frames arrive with dates as ``datetime64`` (or ISO strings) and NaN for missing numbers.
PostgreSQL: the frame is streamed with COPY (binary for bar tables) into a temporary staging
table and merged with one ``INSERT … SELECT … ON CONFLICT DO UPDATE`` — an order of magnitude
faster than executemany over the network. SQLite: ``executemany`` of the same upsert statement in batches (in-process,
so per-row binding is cheap). Both run on the caller's connection, inside its transaction.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd
from sqlalchemy import Connection, String, Table, bindparam, func, select

SQLITE_BATCH = 20_000
COUNT_CHUNK = 500  # keys per IN (...) when counting rows already present


@dataclass
class WriteStats:
    inserted: int = 0
    replaced: int = 0

    def __iadd__(self, other: WriteStats) -> WriteStats:
        self.inserted += other.inserted
        self.replaced += other.replaced
        return self


def iso_dates(values: pd.Series | np.ndarray) -> np.ndarray:
    """Vectorised datetime64/str → 'YYYY-MM-DD' strings (object array; None for NaT)."""
    arr = np.asarray(values)
    if arr.dtype.kind == "M":
        days = arr.astype("datetime64[D]")
        out = np.datetime_as_string(days, unit="D").astype(object)
        out[np.isnat(days)] = None
        return out
    return arr.astype(object)


def _prepare(frame: pd.DataFrame, table: Table) -> pd.DataFrame:
    unknown = [c for c in frame.columns if c not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no columns {unknown}")
    out = frame.copy()
    for name in out.columns:
        if out[name].dtype.kind == "M":
            out[name] = iso_dates(out[name].to_numpy())
    return out


def _as_date(value: object) -> object:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _count_existing(conn: Connection, table: Table, key: tuple[str, ...], frame: pd.DataFrame) -> int:
    """Rows of ``table`` in the frame's key space: first key column IN values, second in range."""
    first = table.c[key[0]]
    values = pd.unique(frame[key[0]]).tolist()
    total = 0
    for i in range(0, len(values), COUNT_CHUNK):
        stmt = select(func.count()).select_from(table).where(first.in_(values[i : i + COUNT_CHUNK]))
        if len(key) > 1:
            second = table.c[key[1]]
            lo, hi = _as_date(frame[key[1]].min()), _as_date(frame[key[1]].max())
            stmt = stmt.where(second >= bindparam("lo", lo, type_=second.type)).where(
                second <= bindparam("hi", hi, type_=second.type)
            )
        total += int(conn.execute(stmt).scalar_one())
    return total


def upsert_frame(
    conn: Connection,
    table: Table,
    frame: pd.DataFrame,
    key: tuple[str, ...],
    on_conflict: Literal["update", "ignore"] = "update",
) -> WriteStats:
    """Write ``frame`` into ``table``; existing keys are replaced (or kept, with "ignore").

    Only the frame's columns are written, so an adj_factor-only import leaves prices alone.
    Duplicate keys inside the frame: the last one wins (PostgreSQL refuses to update a row
    twice in one statement, so they are dropped here).
    """
    if frame.empty:
        return WriteStats()
    frame = frame.drop_duplicates(list(key), keep="last")
    frame = _prepare(frame, table)
    before = _count_existing(conn, table, key, frame)
    if conn.dialect.name == "postgresql":
        _pg_upsert(conn, table, frame, key, on_conflict)
    else:
        _sqlite_upsert(conn, table, frame, key, on_conflict)
    after = _count_existing(conn, table, key, frame)
    inserted = after - before
    replaced = 0 if on_conflict == "ignore" else len(frame) - inserted
    return WriteStats(inserted=inserted, replaced=replaced)


def _conflict_clause(frame: pd.DataFrame, key: tuple[str, ...], on_conflict: str) -> str:
    updates = [c for c in frame.columns if c not in key]
    if on_conflict == "ignore" or not updates:
        return f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    sets = ", ".join(f"{c} = excluded.{c}" for c in updates)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def _pg_upsert(conn: Connection, table: Table, frame: pd.DataFrame, key: tuple[str, ...], on_conflict: str) -> None:
    if _is_bar_frame(frame):
        _pg_upsert_bars(conn, table, frame, key, on_conflict)
        return
    cols = ", ".join(frame.columns)
    stage = f"_stage_{uuid.uuid4().hex[:12]}"
    buf = io.StringIO()
    # Small tables (instruments, calendar, ST): CSV COPY; an unquoted empty field is NULL.
    frame.to_csv(buf, index=False, header=False, na_rep="")
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(f"CREATE TEMP TABLE {stage} (LIKE {table.name} INCLUDING DEFAULTS) ON COMMIT DROP")
        # Text columns must keep "" as "", not NULL (CSV COPY reads an unquoted empty field as NULL).
        texts = [c for c in frame.columns if isinstance(table.c[c].type, String)]
        force = f", FORCE_NOT_NULL ({', '.join(texts)})" if texts else ""
        with cur.copy(f"COPY {stage} ({cols}) FROM STDIN WITH (FORMAT csv{force})") as copy:
            copy.write(buf.getvalue())
        cur.execute(
            f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} "  # noqa: S608 (identifiers are our constants)
            f"{_conflict_clause(frame, key, on_conflict)}"
        )
        cur.execute(f"DROP TABLE {stage}")
    finally:
        cur.close()


_PG_EPOCH_DAYS = 10957  # 2000-01-01, PostgreSQL's binary DATE origin, in days since 1970-01-01
_PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, header extension length


def _is_bar_frame(frame: pd.DataFrame) -> bool:
    rest = frame.columns[2:]
    return list(frame.columns[:2]) == ["symbol", "trade_date"] and all(frame[c].dtype.kind == "f" for c in rest)


def _pg_upsert_bars(
    conn: Connection, table: Table, frame: pd.DataFrame, key: tuple[str, ...], on_conflict: str
) -> None:
    """Bars: COPY BINARY of a numpy-built payload into (symbol index, date, float8...) staging.

    Every staged row is fixed-width (symbols become an int4 index into a text[] parameter;
    NaN is sent as float8 NaN and turned into NULL by NULLIF), so the payload is one
    structured-array ``tobytes()`` — formatting floats as CSV text cost more than the upsert.
    """
    fields = list(frame.columns[2:])
    codes, uniques = pd.factorize(frame["symbol"])
    days = np.asarray(frame["trade_date"].to_numpy(), dtype="datetime64[D]").astype(np.int64) - _PG_EPOCH_DAYS
    spec: list[tuple[str, str]] = [("n", ">i2"), ("l_c", ">i4"), ("c", ">i4"), ("l_d", ">i4"), ("d", ">i4")]
    for i, _ in enumerate(fields):
        spec += [(f"l{i}", ">i4"), (f"f{i}", ">f8")]
    rows = np.empty(len(frame), dtype=np.dtype(spec))
    rows["n"], rows["l_c"], rows["c"], rows["l_d"], rows["d"] = 2 + len(fields), 4, codes + 1, 4, days
    for i, f in enumerate(fields):
        rows[f"l{i}"] = 8
        rows[f"f{i}"] = frame[f].to_numpy(dtype=np.float64)
    stage = f"_stage_{uuid.uuid4().hex[:12]}"
    stage_cols = ", ".join(["c int4", "trade_date date"] + [f"{f} float8" for f in fields])
    target = ", ".join(["symbol", "trade_date", *fields])
    source = ", ".join(["s.sym", "t.trade_date"] + [f"NULLIF(t.{f}, 'NaN'::float8)" for f in fields])
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(f"CREATE TEMP TABLE {stage} ({stage_cols}) ON COMMIT DROP")
        with cur.copy(f"COPY {stage} FROM STDIN WITH (FORMAT binary)") as copy:
            copy.write(_PGCOPY_HEADER + rows.tobytes() + b"\xff\xff")
        cur.execute(
            f"INSERT INTO {table.name} ({target}) SELECT {source} FROM {stage} t "  # noqa: S608 (identifiers are our constants)
            f"JOIN unnest(%s::text[]) WITH ORDINALITY AS s(sym, col) ON s.col = t.c "
            f"{_conflict_clause(frame, key, on_conflict)}",
            (list(uniques),),
        )
        cur.execute(f"DROP TABLE {stage}")
    finally:
        cur.close()


def _sqlite_upsert(conn: Connection, table: Table, frame: pd.DataFrame, key: tuple[str, ...], on_conflict: str) -> None:
    cols = ", ".join(frame.columns)
    marks = ", ".join("?" * len(frame.columns))
    sql = f"INSERT INTO {table.name} ({cols}) VALUES ({marks}) {_conflict_clause(frame, key, on_conflict)}"  # noqa: S608 (identifiers are our constants)
    # object dtype so NaN becomes None (NULL) and numpy scalars become Python ones.
    values = frame.astype(object).where(frame.notna(), None)
    rows = list(values.itertuples(index=False, name=None))
    for i in range(0, len(rows), SQLITE_BATCH):
        conn.exec_driver_sql(sql, rows[i : i + SQLITE_BATCH])
