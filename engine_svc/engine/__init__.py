"""The backtest engine as a plain library: no gRPC and no SQL in here."""

ENGINE_VERSION = "0.1.0"
