"""Running untrusted strategy code in an isolated, resource-limited worker process.

Public API (imported lazily so the worker, which imports this package too, stays light):
``run_in_sandbox``, ``validate_in_sandbox``, ``isolation_report``, ``selfcheck``,
``SandboxLimits``, ``SandboxOutcome``, ``SandboxError``.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "run_in_sandbox": "engine_svc.sandbox.api",
    "validate_in_sandbox": "engine_svc.sandbox.api",
    "isolation_report": "engine_svc.sandbox.api",
    "selfcheck": "engine_svc.sandbox.api",
    "SandboxLimits": "engine_svc.sandbox.limits",
    "SandboxOutcome": "engine_svc.sandbox.launcher",
    "SandboxError": "engine_svc.sandbox.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
