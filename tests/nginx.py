"""Debian's nginx in front of replicas on loopback, run from ``deploy/nginx.conf`` itself.

The deploy file is used as it ships, with only what differs on one machine rewritten: the upstream
servers (``127.0.0.1:<port>`` instead of compose service names), the listen address, and the files
nginx writes (pid, logs, temporary bodies) moved into a private prefix folder. It runs in the
foreground (``daemon off``) as the current user; as root its workers stay root, so they can use the
private folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e.server import free_port

NGINX = "/usr/sbin/nginx"
DEPLOY_CONF = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"


def nginx_binary() -> str | None:
    return NGINX if Path(NGINX).is_file() else shutil.which("nginx")


def render(upstreams: Sequence[str], port: int, prefix: Path) -> str:
    """deploy/nginx.conf for these ``host:port`` upstreams, listening on 127.0.0.1:``port``, files in ``prefix``."""
    conf = DEPLOY_CONF.read_text()
    upstream = re.search(r"(upstream\s+lightbox\s*\{)([^}]*)(\})", conf)
    assert upstream is not None, "deploy/nginx.conf has no `upstream lightbox` block"
    options = re.search(r"server\s+\S+\s+([^;]*);", upstream.group(2))
    extra = options.group(1) if options else ""
    servers = "".join(f"\n        server {address} {extra};" for address in upstreams)
    keepalive = "\n        keepalive 32;\n    " if "keepalive" in upstream.group(2) else "\n    "
    conf = conf[: upstream.start(2)] + servers + keepalive + conf[upstream.end(2) :]
    conf = re.sub(r"(?m)^(\s*)listen\s+[^;]+;", rf"\1listen 127.0.0.1:{port};", conf)
    conf = conf.replace("error_log /dev/stderr warn;", f"error_log {prefix / 'error.log'} warn;")
    conf = conf.replace("access_log /dev/stdout lightbox;", f"access_log {prefix / 'access.log'} lightbox;")
    temp = "".join(
        f"\n    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {", "http {" + temp, 1)
    head = f"daemon off;\npid {prefix / 'nginx.pid'};\n" + ("user root;\n" if os.geteuid() == 0 else "")
    return head + conf


@dataclass
class Nginx:
    url: str
    port: int
    prefix: Path
    process: subprocess.Popen[bytes]

    def access_log(self) -> list[str]:
        return (self.prefix / "access.log").read_text().splitlines()


@contextlib.contextmanager
def running_nginx(upstreams: Sequence[str], prefix: Path) -> Iterator[Nginx]:
    """nginx in front of ``upstreams``, ready when it answers; stopped (SIGQUIT, then SIGKILL) on exit."""
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (Debian package `nginx`)")
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(render(upstreams, port, prefix))
    checked = subprocess.run([binary, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    with (prefix / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf)], stderr=stderr, start_new_session=True)
    running = Nginx(f"http://127.0.0.1:{port}", port, prefix, process)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (prefix / "stderr.log").read_text() + (prefix / "error.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                httpx.get(running.url + "/healthz", timeout=1)
                break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield running
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
