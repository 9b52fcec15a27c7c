"""Idle keep-alive connections: ``lightbox`` keeps them LIGHTBOX_KEEP_ALIVE_SECONDS (75 s by default, longer
than a load balancer's idle timeout), not uvicorn's 5 s, and closes them after that."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.e2e.server import run_server

pytestmark = pytest.mark.slow
REQUEST = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"


def _answered(connection: socket.socket) -> bool:
    connection.sendall(REQUEST)
    return connection.recv(65536).startswith(b"HTTP/1.1 200")


def _closed_by_server(connection: socket.socket) -> bool:
    connection.settimeout(0.5)
    try:
        return connection.recv(1) == b""
    except TimeoutError:
        return False


@pytest.mark.parametrize("setting", [None, "2"])
def test_an_idle_connection_stays_open_as_configured(tmp_path: Path, setting: str | None) -> None:
    env = {"LIGHTBOX_WORKERS": "1", **({"LIGHTBOX_KEEP_ALIVE_SECONDS": setting} if setting else {})}
    with run_server(tmp_path, env=env) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            assert _answered(connection)
            time.sleep(6)  # past uvicorn's own default of 5 s
            if setting is None:
                assert not _closed_by_server(connection)
                connection.settimeout(10)
                assert _answered(connection)  # the same connection, reused after 6 s idle
            else:
                assert _closed_by_server(connection)
