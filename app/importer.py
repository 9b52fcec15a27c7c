"""``lightbox import``: send files, folders (recursively) and ZIP archives to a running service.

Each file goes in its own ``POST /upload`` (ZIPs whole: the service unpacks them), a few at a
time; a progress line shows files, bytes, rate and failures, and a summary ends the run.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

MB = 1024 * 1024


@dataclass
class ImportStats:
    total_files: int = 0
    total_bytes: int = 0
    done: int = 0
    sent_bytes: int = 0
    stored: int = 0
    duplicates: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


def collect(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, and every file under folders named (hidden files and folders skipped)."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path).parts
                if child.is_file() and not any(part.startswith(".") for part in relative):
                    yield child
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")


class Importer:
    """Uploads with a small thread pool and reports progress to ``out``."""

    def __init__(
        self, url: str, out: TextIO = sys.stderr, workers: int = 4, timeout: float = 300, token: str | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None  # an API key or login token
        self.client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)
        self.out = out
        self.workers = workers
        self.stats = ImportStats()
        self._lock = threading.Lock()
        self._last_draw = 0.0

    def _record(self, path: Path, size: int, status: int, body: dict[str, Any]) -> None:
        with self._lock:
            self.stats.done += 1
            self.stats.sent_bytes += size
            entries = body.get("files") or [{"file": path.name, "status": status, "error": body.get("error")}]
            for entry in entries:
                code = int(entry.get("status", status))
                if code == 201:
                    self.stats.stored += 1
                elif code == 200:
                    self.stats.duplicates += 1
                else:
                    where = f"{path}" if entry.get("file") in (None, path.name) else f"{path}:{entry['file']}"
                    self.stats.failures.append((where, f"{code} {entry.get('error') or ''}".strip()))
            self._draw()

    def _send(self, path: Path) -> None:
        size = path.stat().st_size
        try:
            with path.open("rb") as handle:
                response = self.client.post("/upload", files={"file": (path.name, handle)})
            try:
                body = response.json()
            except ValueError:
                body = {"error": response.text[:200]}
            self._record(path, size, response.status_code, body if isinstance(body, dict) else {})
        except (httpx.HTTPError, OSError) as exc:
            self._record(path, size, 0, {"error": f"{type(exc).__name__}: {exc}"})

    def _draw(self, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last_draw < 0.2:
            return
        self._last_draw = now
        s = self.stats
        elapsed = max(now - s.started, 1e-6)
        line = (
            f"\rfiles {s.done}/{s.total_files}  {s.sent_bytes / MB:.1f}/{s.total_bytes / MB:.1f} MB  "
            f"{s.done / elapsed:.1f} files/s  {s.sent_bytes / MB / elapsed:.1f} MB/s  failures {len(s.failures)}"
        )
        self.out.write(line + ("\n" if final else ""))
        self.out.flush()

    def run(self, paths: list[Path]) -> ImportStats:
        files = list(collect(paths))
        self.stats.total_files = len(files)
        self.stats.total_bytes = sum(f.stat().st_size for f in files)
        self.stats.started = time.monotonic()
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(self._send, files))
        self._draw(final=True)
        self.client.close()
        return self.stats

    def summary(self) -> str:
        s = self.stats
        elapsed = time.monotonic() - s.started
        lines = [
            f"imported {s.done} file(s), {s.sent_bytes / MB:.1f} MB in {elapsed:.1f} s: "
            f"{s.stored} stored, {s.duplicates} already stored, {len(s.failures)} failed"
        ]
        lines += [f"  failed: {where}: {why}" for where, why in s.failures[:50]]
        if len(s.failures) > 50:
            lines.append(f"  ... and {len(s.failures) - 50} more")
        return "\n".join(lines)
