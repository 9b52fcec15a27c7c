"""Start the real ``lightbox`` command on 127.0.0.1 and wait until it is ready, optionally under a wrapper
such as strace, or as a bare ``uvicorn`` (its host and port are set through ``UVICORN_*``). The environment
is the test's, less any ``LIGHTBOX_*``/``PROMETHEUS_*``/``UVICORN_*`` the shell had."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

LIGHTBOX = str(Path(sys.executable).with_name("lightbox"))  # the installed console script
UVICORN = str(Path(sys.executable).with_name("uvicorn"))


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
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8").splitlines()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as an orchestrator stops it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def wait_until_ready(server: RunningServer, probe: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"lightbox exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + probe, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("lightbox did not become ready in time:\n" + server.output())


@contextmanager
def run_server(
    workdir: Path,
    storage: Path | None = None,
    env: dict[str, str] | None = None,
    wrapper: Sequence[str] = (),
    wait: bool = True,
    command: Sequence[str] = (LIGHTBOX,),
    probe: str = "/readyz",
) -> Iterator[RunningServer]:
    """A server process whose storage is ``storage`` (default ``workdir/storage``); stopped on exit.

    ``probe`` is what "up" means: ``/readyz`` by default; fault tests that break the storage on
    purpose (and count its fsyncs) wait for ``/healthz``.
    """
    port = free_port()
    storage = storage or workdir / "storage"
    log_path = workdir / f"server-{port}.log"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTBOX_", "PROMETHEUS_", "UVICORN_"))}
    full_env = {
        **inherited,
        # with an s3:// LIGHTBOX_STORAGE_URL, a storage folder as well would be refused (exit 2)
        **({} if "LIGHTBOX_STORAGE_URL" in (env or {}) else {"LIGHTBOX_STORAGE_DIR": str(storage)}),
        "LIGHTBOX_PORT": str(port),
        "LIGHTBOX_HOST": "127.0.0.1",
        "LIGHTBOX_WORKERS": "1",
        "UVICORN_HOST": "127.0.0.1",  # the same address for a bare ``uvicorn`` command
        "UVICORN_PORT": str(port),
        **(env or {}),
    }
    with log_path.open("wb") as log:
        # its own process group: workers, decode sandboxes and wrappers (strace) are all stopped with it
        process = subprocess.Popen(
            [*wrapper, *command], env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RunningServer(f"http://127.0.0.1:{port}", port, storage, process, log_path)
    try:
        if wait:
            wait_until_ready(server, probe)
        yield server
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group (a wrapper may outlive or orphan the server), SIGKILL what stays."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return  # every member is gone
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


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
