"""The backtest engine as a plain library: no gRPC and no SQL in here."""

# Recorded with every result. Bump when the same strategy and data can give a different result.
# 0.2.0: holdings carried through ex-rights days (adj_factor steps).
ENGINE_VERSION = "0.2.0"
