"""The data path on PostgreSQL (a fresh database per module): readiness, ListSymbols, a backtest
whose data hash matches the same slice loaded directly, and unknown symbols."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from engine_service_helpers import AUTH, BUY_AND_HOLD, Harness, Market
from zquant.engine.v1 import engine_pb2

from engine_svc.data.loader import load_panel

pytestmark = pytest.mark.postgres


def test_backtest_and_symbols_on_postgres(make_server: Any, pg_market: Market) -> None:
    h: Harness = make_server(pg_market, check_ready=True)  # migrations at head, data reachable, worker ok
    listed = h.stub.ListSymbols(engine_pb2.ListSymbolsRequest(symbols=[*pg_market.stocks, "000009.SZ"]),
                                metadata=AUTH)
    assert [s.symbol for s in listed.symbols] == sorted(pg_market.stocks) and list(listed.missing) == ["000009.SZ"]

    config = h.config(pg_market, benchmark=pg_market.index)
    events = h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD, config=config))
    result = events[-1].result
    assert events[-1].WhichOneof("event") == "result"
    panel = load_panel(pg_market.engine, list(config.symbols), config.start_date, config.end_date, pg_market.index)
    assert result.data_hash == panel.data_hash()
    assert len(result.daily) == len(panel.dates) and result.metrics.HasField("beta")

    with pytest.raises(grpc.RpcError) as info:
        h.run(engine_pb2.RunBacktestRequest(strategy_code=BUY_AND_HOLD,
                                            config=h.config(pg_market, symbols=["688999.SH"])))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "688999.SH" in info.value.details()
