"""SIGTERM during an upload: in-flight requests finish within LIGHTBOX_SHUTDOWN_TIMEOUT, and no half file is left."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from app.storage.local import MARKER
from tests.conftest import sample
from tests.e2e.process import Server, lightbox

BOUNDARY = "lightbox-test-boundary"
# uvicorn finishes its graceful shutdown, then re-raises SIGTERM so the exit status says why it stopped.
CLEAN_EXIT = (0, -signal.SIGTERM)


def multipart(filename: str, content: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/dicom\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def start_upload(server: Server, body: bytes, send: int) -> socket.socket:
    """Send the request line, headers and the first ``send`` bytes of the body; keep the rest back."""
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    headers = (
        "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    connection.sendall(headers.encode() + body[:send])
    return connection


def wait_for_staged(server: Server, min_size: int) -> None:
    """Until the server has a staged (partial) upload of at least ``min_size`` bytes on disk."""
    staging = server.storage / ".staging"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if any(p.suffix == ".part" and p.stat().st_size >= min_size for p in staging.glob("*.part")):
            return
        time.sleep(0.02)
    raise AssertionError("the upload never reached the staging folder")


def stored_files(server: Server) -> list[Path]:
    return sorted(
        p for p in server.storage.rglob("*") if p.is_file() and not p.name.startswith(("index.sqlite3", MARKER))
    )


def test_an_in_flight_upload_finishes_after_sigterm(tmp_path: Path) -> None:
    content = sample("MR_small.dcm").read_bytes()
    body = multipart("IM1.dcm", content)
    with lightbox(tmp_path, shutdown_timeout="20") as server:
        connection = start_upload(server, body, send=len(body) - 200)
        wait_for_staged(server, 0)
        server.process.terminate()  # SIGTERM
        time.sleep(0.5)
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
            raise AssertionError("the server still accepts new connections after SIGTERM")
        except ConnectionRefusedError:
            pass
        connection.sendall(body[-200:])
        response = connection.makefile("rb").read()
        connection.close()
        assert response.startswith(b"HTTP/1.1 201"), response[:200]
        assert server.process.wait(timeout=20) in CLEAN_EXIT
    [stored] = stored_files(server)
    assert stored.read_bytes() == content


def test_an_upload_cut_by_the_shutdown_timeout_leaves_nothing(tmp_path: Path) -> None:
    junk = b"\0" * 128 + b"DICM" + b"\1" * (3 * 1024 * 1024)  # never completed, so never validated
    body = multipart("IM2.dcm", junk)
    with lightbox(tmp_path, shutdown_timeout="1", workers="2") as server:
        connection = start_upload(server, body, send=2 * 1024 * 1024)
        wait_for_staged(server, 1024 * 1024)
        started = time.monotonic()
        server.process.terminate()
        assert server.process.wait(timeout=20) in CLEAN_EXIT
        stopped_after = time.monotonic() - started
        connection.close()
    assert stopped_after < 8, stopped_after  # 1 s of grace, then cancelled: bounded, not waiting for the client
    assert stored_files(server) == []
    assert (server.storage / ".staging").is_dir()
    log = server.log_lines()
    assert any("timeout graceful shutdown exceeded" in line for line in log)
    assert any("request ended without a response" in line for line in log)  # cancelled, cleaned up, then exit
