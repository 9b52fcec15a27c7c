"""A listening socket of its own for every worker (``SO_REUSEPORT``), so the kernel spreads connections.

uvicorn's multi-worker mode binds one socket in the supervisor and hands the same socket to every
worker. The worker that is idle when connections arrive accepts all of them at once (uvloop accepts
until the queue is empty), and with keep-alive they stay with it: a load balancer's or a client's
pool of 8 connections was measured on one of two workers, the other idle, so ``LIGHTBOX_WORKERS=2``
uploaded no faster than one worker. With ``SO_REUSEPORT`` (Linux) each worker listens on its own
socket bound to the same address, and the kernel assigns every new connection to one of them by a
hash of its addresses, whoever happens to be awake.

:class:`ReusePortListener` is what the supervisor holds and passes to each worker: bound (the port
is taken, and a port of 0 is settled once) but never listening, so it receives no connection. It
is pickled to a worker process as its address, and the worker unpickles a fresh socket of its own,
bound to that address and listening there; a restarted worker gets a fresh one the same way. The
connections waiting in a worker's queue when it exits are reset, as with any ``SO_REUSEPORT``
server; clients (and load balancers) retry a refused or reset connection that carried no request.
"""

from __future__ import annotations

import socket
import sys
from typing import Any


def reuse_port_supported() -> bool:
    """Linux spreads connections over ``SO_REUSEPORT`` sockets; other systems' option means something else."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _bound(family: int, address: tuple[Any, ...], *, reuse_port: bool = True) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class ReusePortListener(socket.socket):
    """A bound ``SO_REUSEPORT`` socket that becomes a fresh socket on the same address in each worker."""

    @classmethod
    def bind_to(cls, host: str, port: int) -> ReusePortListener:
        """Bind in the supervisor: fails now (address in use, no permission) rather than in every worker.

        The address is first bound without ``SO_REUSEPORT``: another server of the same user listening
        there with the option (a second ``lightbox`` started by mistake) would otherwise share the port,
        the kernel splitting connections between the two, where a plain bind fails with "address in use".
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with _bound(family, (host, port), reuse_port=False) as probe:
            address = probe.getsockname()  # a port of 0 settled here; an IPv6 scope id kept
        plain = _bound(family, address)
        try:
            return cls(family, socket.SOCK_STREAM, fileno=plain.detach())
        except BaseException:
            plain.close()
            raise

    def __reduce__(self) -> tuple[Any, ...]:
        return (_worker_socket, (int(self.family), self.getsockname()))


def _worker_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    """In a worker: a socket of its own on the supervisor's address (uvicorn makes it listen)."""
    return _bound(family, address)
