from __future__ import annotations

import numpy as np

from engine_svc.data.cache import PanelCache, panel_nbytes
from engine_svc.data.synthetic import generate_panel


def test_lru_by_bytes_and_versions() -> None:
    a, b, c = (generate_panel(10, 50, seed=s) for s in (1, 2, 3))
    size = panel_nbytes(a)
    assert size == panel_nbytes(b) > 10 * 50 * 8 * 10
    cache = PanelCache(max_bytes=2 * size + size // 2)  # room for two
    cache.put("a", 1, a)
    cache.put("b", 1, b)
    assert cache.get("a", 1) is a  # a is now most recently used
    cache.put("c", 1, c)  # evicts b, the least recently used
    assert cache.get("b", 1) is None
    assert cache.get("a", 1) is a and cache.get("c", 1) is c
    assert len(cache) == 2 and cache.nbytes == 2 * size
    # a newer data version makes the entry stale and frees it
    assert cache.get("a", 2) is None
    assert len(cache) == 1 and cache.nbytes == size
    assert cache.hits == 3 and cache.misses == 2


def test_too_big_or_disabled_is_not_cached() -> None:
    p = generate_panel(5, 20)
    cache = PanelCache(max_bytes=0)
    cache.put("k", 1, p)
    assert cache.get("k", 1) is None and cache.nbytes == 0


def test_default_cache_size_from_env(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import engine_svc.data.cache as mod

    monkeypatch.setattr(mod, "_default", None)
    monkeypatch.setenv("ZQ_ENGINE_PANEL_CACHE_MB", "3")
    assert mod.default_cache().max_bytes == 3 * 1024 * 1024
    monkeypatch.setattr(mod, "_default", None)
    monkeypatch.delenv("ZQ_ENGINE_PANEL_CACHE_MB")
    assert mod.default_cache().max_bytes == 512 * 1024 * 1024
    monkeypatch.setattr(mod, "_default", None)
    assert np.isclose(mod.DEFAULT_CACHE_MB, 512)
