"""Coalesced response writes: one socket write per small response, large bodies at once, nothing lost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.data import get_testdata_file

from app.http_writes import LARGE_WRITE, CoalescingTransport
from tests.e2e.server import run_server


class Recorder(asyncio.Transport):
    """A transport that records each write it is given (what would be one system call each)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_a_head_and_body_sent_in_one_turn_leave_in_one_write(loop: asyncio.AbstractEventLoop) -> None:
    real = Recorder()
    transport = CoalescingTransport(real, loop)
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert real.writes == []  # held until the end of the turn
    turn(loop)
    assert real.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    transport.write(b"next")
    turn(loop)
    assert real.writes[1:] == [b"next"]


def test_a_large_body_goes_out_at_once_after_what_was_held(loop: asyncio.AbstractEventLoop) -> None:
    real = Recorder()
    transport = CoalescingTransport(real, loop)
    body = b"x" * LARGE_WRITE
    transport.write(b"head")
    transport.write(body)
    assert real.writes == [b"head", body]  # in order, the body not copied into a join
    assert real.writes[1] is body
    transport.write(b"a" * (LARGE_WRITE // 2))
    transport.write(b"b" * (LARGE_WRITE // 2))  # the held bytes reach the threshold: sent now
    assert real.writes[2] == b"a" * (LARGE_WRITE // 2) + b"b" * (LARGE_WRITE // 2)
    turn(loop)
    assert len(real.writes) == 3


def test_close_sends_what_is_held_and_abort_drops_it(loop: asyncio.AbstractEventLoop) -> None:
    real = Recorder()
    transport = CoalescingTransport(real, loop)
    transport.write(b"last words")
    transport.close()
    assert real.writes == [b"last words"] and real.closed
    turn(loop)  # the scheduled flush finds nothing (and writes nothing to a closed transport)
    assert real.writes == [b"last words"]
    other = Recorder()
    transport = CoalescingTransport(other, loop)
    transport.write(b"never")
    transport.abort()
    turn(loop)
    assert other.writes == [] and other.aborted


def test_the_service_answers_whole_responses_over_real_sockets(tmp_path: Path) -> None:
    """Keep-alive, pipelining, a large download and a connection the client closes, through ``lightbox``."""
    with run_server(tmp_path, env={"LIGHTBOX_WORKERS": "1"}) as server:
        with httpx.Client(base_url=server.url) as client:
            big = Path(str(get_testdata_file("emri_small_jpeg_2k_lossless.dcm"))).read_bytes()
            name = client.post("/upload", files={"file": ("big.dcm", big)}).json()["name"]
            for _ in range(20):  # one keep-alive connection, many small answers
                assert client.get("/healthz").status_code == 200
            download = client.get(f"/dicomFile/{name}", params={"download": ""})
            assert download.status_code == 200 and download.content == big
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:  # two requests pipelined in one packet
            raw.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            raw.settimeout(10)
            received = b""
            while received.count(b"HTTP/1.1 200") < 2:
                chunk = raw.recv(65536)
                assert chunk, received
                received += chunk
        assert received.count(b"HTTP/1.1 200") == 2
