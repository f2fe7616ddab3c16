"""Latency statistics shared by the bench scripts, so every p99 in bench/README.md means the same.

Percentiles are nearest-rank: the smallest sample with at least p % of the samples at or below
it (with 20 samples, p99 is the maximum). No interpolation: a reported latency was observed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    """n, p50/p90/p99/max in milliseconds of latencies given in seconds."""
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2) if ms else 0.0}
