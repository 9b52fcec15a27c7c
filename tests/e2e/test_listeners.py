"""Connections are spread over ``lightbox``'s workers: each worker listens on a socket of its own
(``SO_REUSEPORT``), so a pool of keep-alive connections opened at once does not all land on the
worker that happened to be awake (measured before: 8 upload connections on one of two workers).

Which process owns a connection is read from ``/proc``: the socket inodes each worker holds, and the
inode of every TCP socket by its addresses."""

from __future__ import annotations

import errno
import pickle
import socket
import time
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import pytest

from app.listeners import ReusePortListener, reuse_port_supported
from tests.e2e.server import run_server

pytestmark = pytest.mark.skipif(not reuse_port_supported(), reason="SO_REUSEPORT spreads connections on Linux only")
REQUEST = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
LISTEN = "0A"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _tcp_sockets() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every IPv4 TCP socket."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        rows.append((local_port, remote_port, fields[3], int(fields[9])))
    return rows


def _listening(port: int) -> set[int]:
    return {inode for local, _, state, inode in _tcp_sockets() if local == port and state == LISTEN}


def _wait_for_listeners(port: int, count: int, seconds: float = 60) -> set[int]:
    """``/readyz`` answers once one worker is up; the others may still be importing."""
    deadline = time.monotonic() + seconds
    while len(found := _listening(port)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_each_worker_listens_and_connections_opened_at_once_reach_both(tmp_path: Path) -> None:
    with run_server(tmp_path, env={"LIGHTBOX_WORKERS": "2"}) as server:
        listening = _wait_for_listeners(server.port, 2)
        clients = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(16)]
        try:
            for client in clients:
                client.sendall(REQUEST)
            for client in clients:
                assert client.recv(65536).startswith(b"HTTP/1.1 200")
            sockets = _tcp_sockets()
            listening = {inode for port, _, state, inode in sockets if port == server.port and state == LISTEN}
            by_client_port = {remote: inode for port, remote, state, inode in sockets if port == server.port}
            owners: dict[int, int] = {}
            for worker in _children(server.process.pid):
                held = _socket_inodes(worker)
                assert len(held & listening) <= 1
                for client in clients:
                    if by_client_port[client.getsockname()[1]] in held:
                        owners[worker] = owners.get(worker, 0) + 1
        finally:
            for client in clients:
                client.close()
    assert len(listening) == 2, "one listening socket per worker"
    assert sum(owners.values()) == len(clients)
    # the kernel hashes each connection to a worker: all 16 on one of two happens 2 times in 65,536
    assert len(owners) == 2, owners


def test_a_worker_unpickles_a_fresh_socket_on_the_supervisors_address() -> None:
    """What the supervisor passes to a worker process: its address, becoming a socket of the worker's own."""
    with ReusePortListener.bind_to("127.0.0.1", 0) as listener:
        port = listener.getsockname()[1]
        assert port != 0  # a port of 0 is settled once, in the supervisor
        with pickle.loads(ForkingPickler.dumps(listener)) as worker_socket:
            assert type(worker_socket) is socket.socket
            assert worker_socket.fileno() != listener.fileno()
            assert worker_socket.getsockname() == ("127.0.0.1", port)
            assert worker_socket.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            worker_socket.listen()
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                accepted, _ = worker_socket.accept()  # the worker's socket receives; the supervisor's never listens
                accepted.close()


def test_a_second_server_cannot_share_the_port_through_the_option() -> None:
    """``SO_REUSEPORT`` lets sockets of one user share a port: a second ``lightbox`` on the same address
    must fail as it did with one shared socket (address in use), not take half the connections."""
    with (
        ReusePortListener.bind_to("127.0.0.1", 0) as first,
        pickle.loads(ForkingPickler.dumps(first)) as worker_socket,
    ):
        worker_socket.listen()
        with pytest.raises(OSError) as refused:
            ReusePortListener.bind_to("127.0.0.1", first.getsockname()[1])
        assert refused.value.errno == errno.EADDRINUSE


def test_an_address_in_use_stops_lightbox_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"LIGHTBOX_WORKERS": "2", "LIGHTBOX_PORT": str(port)}
        with run_server(tmp_path, env=env, wait=False) as server:
            assert server.process.wait(timeout=60) == 1
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in server.output()
