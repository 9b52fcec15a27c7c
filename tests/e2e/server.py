"""Start a real Lightbox process (``python -m app``) on 127.0.0.1, optionally under a wrapper such as strace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    url: str
    port: int
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_until_up(url: str, process: subprocess.Popen[bytes], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.get(url + "/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("server did not start in time")


@contextmanager
def run_server(
    workdir: Path,
    storage: Path | None = None,
    env: dict[str, str] | None = None,
    wrapper: Sequence[str] = (),
    wait: bool = True,
) -> Iterator[RunningServer]:
    """A server process whose storage is ``storage`` (default ``workdir/storage``); stopped on exit."""
    port = free_port()
    storage = storage or workdir / "storage"
    log_path = workdir / f"server-{port}.log"
    full_env = {
        **os.environ,
        "LIGHTBOX_STORAGE_DIR": str(storage),
        "LIGHTBOX_PORT": str(port),
        "LIGHTBOX_HOST": "127.0.0.1",
        "LIGHTBOX_WORKERS": "1",
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen([*wrapper, sys.executable, "-m", "app"], env=full_env, stdout=log, stderr=log)
        server = RunningServer(f"http://127.0.0.1:{port}", port, storage, process, log_path)
        try:
            if wait:
                wait_until_up(server.url, process)
            yield server
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def raw_request(port: int, data: bytes, timeout: float = 10.0, read: bool = True) -> bytes:
    """Send bytes as they are (no client-side normalisation) and return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if not read:
            return b""
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
        return b"".join(chunks)


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
