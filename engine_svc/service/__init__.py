"""engine_svc's gRPC layer: EngineServicer (servicer.py) over EngineCore (runner.py), the slot
pool (slots.py), proto ↔ plain-data conversion (convert.py) and the production adapters for the
market-data store and the sandbox (adapters.py). The process entry point is engine_svc/serve.py."""
