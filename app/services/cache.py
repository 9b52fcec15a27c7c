"""A small thread-safe LRU map, bounded by entry count and by a cost budget."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """Least-recently-used cache; ``cost`` of each value counts against ``max_cost``."""

    def __init__(self, max_entries: int, max_cost: int | None = None, cost: Callable[[V], int] = lambda _v: 1) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._max_cost = max_cost
        self._cost = cost
        self._total = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def peek(self, key: K) -> V | None:
        """The value without counting a hit or a miss and without refreshing its age (a probe)."""
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        cost = self._cost(value)
        if self._max_entries <= 0 or (self._max_cost is not None and cost > self._max_cost):
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= self._cost(old)
            self._items[key] = value
            self._total += cost
            while len(self._items) > self._max_entries or (self._max_cost is not None and self._total > self._max_cost):
                _, evicted = self._items.popitem(last=False)
                self._total -= self._cost(evicted)

    def discard_where(self, predicate: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:
                self._total -= self._cost(self._items.pop(key))
