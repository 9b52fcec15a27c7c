"""A throwaway PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a private cluster in a
temporary folder, on a free loopback port, run as a non-root user (PostgreSQL refuses to run as root).

``LIGHTBOX_TEST_DATABASE_URL`` names a running server instead (its user must be allowed to create
databases). Each test gets its own fresh database (:func:`fresh_database`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tests.e2e.server import free_port

SUPERUSER = "lightbox"
#: Debian installs the server binaries outside PATH, one folder per major version.
DEBIAN_BINARIES = "/usr/lib/postgresql"


def server_binaries() -> Path | None:
    """The newest ``bin`` folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    candidates = sorted(
        Path(DEBIAN_BINARIES).glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name), reverse=True
    )
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve())
    for initdb in candidates:
        if (initdb.parent / "pg_ctl").is_file():
            return initdb.parent
    return None


@dataclass
class Cluster:
    """A running server: ``url`` connects as a superuser to its ``postgres`` database."""

    url: str
    stop_command: Sequence[str] | None = None
    folder: Path | None = None
    start_command: Sequence[str] | None = None

    def pause(self) -> None:
        """Stop the server, keeping its data (a database outage); :meth:`resume` starts it again."""
        assert self.stop_command is not None, "a server the tests did not start is not theirs to stop"
        subprocess.run(self.stop_command, check=True, capture_output=True, timeout=60)

    def resume(self) -> None:
        assert self.start_command is not None
        subprocess.run(self.start_command, check=True, capture_output=True, timeout=120)

    def stop(self) -> None:
        if self.stop_command is not None:
            subprocess.run(self.stop_command, check=False, capture_output=True, timeout=60)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _as_unprivileged(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root: as root, run it as the ``postgres`` user the Debian package made."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextlib.contextmanager
def throwaway_cluster(extra_options: str = "") -> Iterator[Cluster]:
    """initdb + pg_ctl start in a temporary folder; stopped and removed on exit.

    ``extra_options``: more server options (``-c shared_preload_libraries=pg_stat_statements``).
    """
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError("PostgreSQL's initdb and pg_ctl are not installed (Debian package `postgresql`)")
    folder = Path(tempfile.mkdtemp(prefix="lightbox-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(folder, postgres.pw_uid, postgres.pw_gid)
    folder.chmod(0o700)
    port = free_port()
    initdb = [str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]
    subprocess.run(_as_unprivileged([*initdb, "--no-sync"]), check=True, capture_output=True, timeout=120)
    # loopback only, no Unix socket; durability is irrelevant for a throwaway cluster
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k '' -c fsync=off -c synchronous_commit=off -c max_connections=200"
        f" {extra_options}"
    ).strip()
    pg_ctl = str(binaries / "pg_ctl")
    start = [pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "-t", "60", "start"]
    cluster = Cluster(
        f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres",
        _as_unprivileged([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
        folder,
        _as_unprivileged(start),
    )
    try:
        subprocess.run(_as_unprivileged(start), check=True, capture_output=True, timeout=120)
        yield cluster
    finally:
        cluster.stop()


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


async def _create(admin_url: str, database: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            connection = await asyncpg.connect(admin_url)
            break
        except (OSError, asyncpg.CannotConnectNowError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    try:
        await connection.execute(f"CREATE DATABASE \"{database}\" TEMPLATE template0 ENCODING 'UTF8'")
    finally:
        await connection.close()


async def _drop(admin_url: str, database: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await connection.close()


def _run_apart(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` on a loop of its own thread: a fixture may be set up while the test's loop exists."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, work).result()


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server (dropped afterwards); its ``postgresql://`` URL."""
    database = f"lightbox_test_{uuid.uuid4().hex[:12]}"
    _run_apart(_create(admin_url, database))
    try:
        yield _with_database(admin_url, database)
    finally:
        _run_apart(_drop(admin_url, database))
