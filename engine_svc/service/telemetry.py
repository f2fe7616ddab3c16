"""engine_svc's own Prometheus metrics (the per-RPC ones come from services/metrics.py).

Slots, queue and the panel cache are read from the objects that own them when scraped;
durations and kills are counted where they happen (runner.py, adapters.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine_svc.data.cache import default_cache
from engine_svc.service.slots import SlotPool
from services.metrics import register_source

BACKTEST_SECONDS = Histogram(
    "zq_engine_backtest_seconds", "Wall time of a backtest in its slot (worker start to result), by outcome "
    "(completed or the failure kind).", ["outcome"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800))
WORKER_START_SECONDS = Histogram(
    "zq_engine_worker_start_seconds", "Time from spawning (or taking a spare) sandboxed worker to it being "
    "hardened and ready.", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5))
# SandboxError kinds that mean the sandbox stopped the worker (not the strategy's own error).
KILL_CAUSES = frozenset({"memory", "cpu_time", "wall_time", "killed", "crashed", "too_large", "protocol",
                         "cancelled"})
SANDBOX_KILLS = Counter("zq_engine_sandbox_kills", "Workers ended by the sandbox, by cause (memory, cpu_time, "
                        "wall_time, killed, crashed, too_large, protocol, cancelled).", ["cause"])


def count_sandbox_end(kind: str) -> None:
    if kind in KILL_CAUSES:
        SANDBOX_KILLS.labels(kind).inc()


def _pool_metrics(pool: SlotPool) -> Iterable[Metric]:
    stats = pool.stats()
    slots = GaugeMetricFamily("zq_engine_slots", "Backtest slots of this replica by state.", labels=["state"])
    slots.add_metric(["busy"], stats.running)
    slots.add_metric(["free"], stats.slots - stats.running)
    yield slots
    yield GaugeMetricFamily("zq_engine_queue_length", "Admitted backtests waiting for a slot.", value=stats.waiting)
    yield GaugeMetricFamily("zq_engine_queue_capacity", "Backtests that may wait (ZQ_ENGINE_QUEUE); beyond → 429.",
                            value=stats.queue)
    cache = default_cache()
    yield CounterMetricFamily("zq_engine_panel_cache_hits", "Market-data panels served from the in-process cache.",
                              value=cache.hits)
    yield CounterMetricFamily("zq_engine_panel_cache_misses", "Market-data panels read from the database.",
                              value=cache.misses)
    yield GaugeMetricFamily("zq_engine_panel_cache_bytes", "Bytes held by the panel cache "
                            "(ZQ_ENGINE_PANEL_CACHE_MB bounds it).", value=cache.nbytes)


def watch_pool(pool: SlotPool) -> None:
    """Reports ``pool``'s slots and queue (and the process's panel cache) while it lives."""
    register_source(pool, _pool_metrics)
