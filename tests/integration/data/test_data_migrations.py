from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text

from engine_svc.data.db import dispose_all, get_engine
from services.migrations import upgrade

EXPECTED = {
    "trading_calendar": {"exchange", "cal_date", "is_open"},
    "instruments": {"symbol", "name", "board", "exchange", "list_date", "delist_date", "is_index"},
    "st_periods": {"symbol", "start_date", "end_date"},
    "daily_bars": {
        "symbol",
        "trade_date",
        "open",
        "high",
        "low",
        "close",
        "pre_close",
        "volume",
        "amount",
        "adj_factor",
        "up_limit",
        "down_limit",
    },
    "index_bars": {"symbol", "trade_date", "open", "high", "low", "close", "pre_close", "volume", "amount"},
    "data_version": {"id", "version"},
}


@pytest.fixture(scope="module", autouse=True)
def _dispose() -> Iterator[None]:
    yield
    dispose_all()


def test_upgrade_creates_market_tables(db_url: str) -> None:
    engine = get_engine(db_url)
    upgrade("engine", engine)
    upgrade("engine", engine)  # idempotent
    insp = inspect(engine)
    tables = set(insp.get_table_names())
    assert set(EXPECTED) | {"daily_basic", "alembic_version_engine"} <= tables
    for table, cols in EXPECTED.items():
        assert {c["name"] for c in insp.get_columns(table)} == cols, table
    assert insp.get_pk_constraint("daily_bars")["constrained_columns"] == ["symbol", "trade_date"]
    assert insp.get_pk_constraint("trading_calendar")["constrained_columns"] == ["exchange", "cal_date"]
    basic = {c["name"] for c in insp.get_columns("daily_basic")}
    assert len(basic) == 17 and {"pe_ttm", "circ_mv", "dv_ttm"} <= basic
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version_engine")).scalar_one() == "0001"
        assert conn.execute(text("SELECT id FROM data_version")).scalars().all() == [1]
