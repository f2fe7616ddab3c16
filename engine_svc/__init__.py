"""engine_svc: market data, the daily-bar A-share backtest engine, metrics, sandboxed execution."""
