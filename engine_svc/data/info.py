"""What is in the market-data store: row counts, symbol counts, date ranges."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from engine_svc.data.db import get_engine, read_data_version

_TABLES = {
    "trading_calendar": "cal_date",
    "instruments": None,
    "st_periods": "start_date",
    "daily_bars": "trade_date",
    "daily_basic": "trade_date",
    "index_bars": "trade_date",
}


def db_info(url_or_engine: str | Engine) -> dict[str, Any]:
    engine = get_engine(url_or_engine)
    out: dict[str, Any] = {"url": engine.url.render_as_string(hide_password=True), "tables": {}}
    with engine.connect() as conn:
        out["data_version"] = read_data_version(conn)
        for table, date_col in _TABLES.items():
            row: dict[str, Any] = {"rows": int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())}  # noqa: S608
            if date_col:
                lo, hi = conn.execute(text(f"SELECT MIN({date_col}), MAX({date_col}) FROM {table}")).one()  # noqa: S608
                row["first_date"], row["last_date"] = (str(lo) if lo else None), (str(hi) if hi else None)
            out["tables"][table] = row
        stocks, indexes = conn.execute(
            text(
                "SELECT COALESCE(SUM(CASE WHEN is_index THEN 0 ELSE 1 END), 0), "
                "COALESCE(SUM(CASE WHEN is_index THEN 1 ELSE 0 END), 0) FROM instruments"
            )
        ).one()
        out["symbols"] = {"stocks": int(stocks), "indexes": int(indexes)}
        out["symbols_with_bars"] = int(
            conn.execute(text("SELECT COUNT(DISTINCT symbol) FROM daily_bars WHERE close IS NOT NULL")).scalar_one()
        )
    return out


def format_info(info: dict[str, Any]) -> str:
    lines = [
        f"database: {info['url']}",
        f"data_version: {info['data_version']}",
        f"instruments: {info['symbols']['stocks']} stocks, {info['symbols']['indexes']} indexes; "
        f"{info['symbols_with_bars']} symbols with daily bars",
        f"{'table':<18} {'rows':>10}  range",
    ]
    for table, row in info["tables"].items():
        span = f"{row['first_date']} .. {row['last_date']}" if row.get("first_date") else ""
        lines.append(f"{table:<18} {row['rows']:>10}  {span}")
    return "\n".join(lines)
