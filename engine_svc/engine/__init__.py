"""The backtest engine as a plain library: no gRPC and no SQL in here."""

# Recorded with every result. Bump when the same strategy and data can give a different result.
# 0.2.0: holdings carried through ex-rights days (adj_factor steps).
# 0.3.0: qfq point in time; slippage capped at the price limits; the strategy runs apart from the
#        ledger (results otherwise identical to 0.2.0).
ENGINE_VERSION = "0.3.0"
