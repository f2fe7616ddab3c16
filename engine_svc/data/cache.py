"""A bounded in-process LRU of loaded panels, sized by the bytes of their arrays.

Entries are tagged with the database's ``data_version`` at load time; a lookup with a newer
version drops the stale entry, so an import anywhere (any process, any replica) invalidates
every cached panel of that database on the next load.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from engine_svc.engine.panel import Panel
from services.config import env_int

DEFAULT_CACHE_MB = 512


def panel_nbytes(panel: Panel) -> int:
    total = panel.dates.nbytes + sum(a.nbytes for a in panel.bars.values())
    total += panel.is_st.nbytes if panel.is_st is not None else 0
    total += sum(a.nbytes for a in (panel.daily_basic or {}).values())
    total += panel.benchmark.close.nbytes if panel.benchmark is not None else 0
    return total


class PanelCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[int, Panel, int]] = OrderedDict()  # key -> (version, panel, size)
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable, version: int) -> Panel | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != version:
                if item is not None:  # stale: the data changed since it was loaded
                    self._drop(key)
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key: Hashable, version: int, panel: Panel) -> None:
        size = panel_nbytes(panel)
        if size > self.max_bytes:
            return  # would evict everything and still not fit
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = (version, panel, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._items)))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        _version, _panel, size = self._items.pop(key)
        self._bytes -= size


_default: PanelCache | None = None
_default_lock = threading.Lock()


def default_cache() -> PanelCache:
    """The process cache, sized by ``ZQ_ENGINE_PANEL_CACHE_MB`` (default 512; 0 disables)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PanelCache(env_int("ZQ_ENGINE_PANEL_CACHE_MB", DEFAULT_CACHE_MB) * 1024 * 1024)
        return _default
