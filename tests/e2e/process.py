"""Start the real ``lightbox`` command on 127.0.0.1 and wait until it answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

LIGHTBOX = str(Path(sys.executable).with_name("lightbox"))  # the installed console script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    storage: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextmanager
def lightbox(tmp_path: Path, **settings: str) -> Iterator[Server]:
    """``lightbox`` with ``LIGHTBOX_<KEY>=value`` for each keyword; stdout and stderr go to a file."""
    port = free_port()
    storage = tmp_path / "storage"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTBOX_", "PROMETHEUS_"))}
    env |= {"LIGHTBOX_STORAGE_DIR": str(storage), "LIGHTBOX_PORT": str(port), "LIGHTBOX_WORKERS": "1"}
    env |= {f"LIGHTBOX_{key.upper()}": value for key, value in settings.items()}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([LIGHTBOX], env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", port, process, log_path, storage)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("lightbox did not start:\n" + log_path.read_text())
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
