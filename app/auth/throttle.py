"""Login rate limiting: failed attempts per user name and per client address, in this process.

Kept in memory per worker process (a restart or another worker starts from zero), which bounds
online password guessing without a database write per failure; it only ever *refuses* logins, so
it is never the authority on access. With N workers an attacker gets at most N times the budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from app.errors import TooManyAttempts

WINDOW_SECONDS = 300.0
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_CLIENT = 20
MAX_TRACKED = 10_000  # bounded memory under a spray of made-up names


class LoginThrottle:
    """Sliding window of failure times per key (``user:<name>``, ``client:<address>``)."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        return times

    def check(self, username: str, client: str | None) -> None:
        """TooManyAttempts (with the seconds to wait) when either budget is spent."""
        now = time.monotonic()
        with self._lock:
            for key, limit in self._keys(username, client):
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(1, math.ceil(times[0] + WINDOW_SECONDS - now))
                    raise TooManyAttempts("too many failed logins: try again later", wait)

    def failed(self, username: str, client: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > MAX_TRACKED:
                self._failures = {k: v for k, v in self._failures.items() if self._recent(k, now)}
            for key, _ in self._keys(username, client):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{username.lower()[:128]}", None)

    @staticmethod
    def _keys(username: str, client: str | None) -> list[tuple[str, int]]:
        keys = [(f"user:{username.lower()[:128]}", MAX_FAILURES_PER_USER)]
        if client:
            keys.append((f"client:{client}", MAX_FAILURES_PER_CLIENT))
        return keys
