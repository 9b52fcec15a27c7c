"""OHIF Viewer's prebuilt ``dist/`` (npm ``@ohif/app``, pinned in ``tests/e2e/ohif/package-lock.json``) served
on 127.0.0.1 by Python's http.server in a thread, with the ``app-config.js`` a test gives it.

OHIF is a single-page app: any path that is not a file of ``dist/`` (``/viewer``, ``/``) gets
``index.html`` and its router takes over, as the ``_redirects`` rule OHIF ships says.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DIST = Path(__file__).with_name("ohif") / "node_modules" / "@ohif" / "app" / "dist"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "ohif" / "app-config.js"
EXAMPLE_ROOT = "http://localhost:8080/dicom-web"


def app_config(dicomweb_root: str) -> str:
    """The README's ``app-config.js`` (``examples/ohif/app-config.js``) pointed at ``dicomweb_root``."""
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    quoted = f"'{EXAMPLE_ROOT}"
    assert text.count(quoted) == 3, "the example names the root in qidoRoot, wadoRoot and wadoUriRoot"
    return text.replace(quoted, f"'{dicomweb_root.rstrip('/')}")


class _SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    config_js = b""


class _Handler(SimpleHTTPRequestHandler):
    server: _SiteServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reports what the browser saw."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/app-config.js":
            self.send_response(200)
            self.send_header("Content-Type", "text/javascript; charset=utf-8")
            self.send_header("Content-Length", str(len(self.server.config_js)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(self.server.config_js)
            return
        if not (DIST / path.lstrip("/")).is_file():
            self.path = "/index.html"  # the SPA fallback
        super().do_GET()


@dataclass
class Site:
    """Where OHIF answers; ``configure`` sets the ``app-config.js`` it serves from then on."""

    origin: str
    server: _SiteServer

    def configure(self, config_js: str) -> None:
        self.server.config_js = config_js.encode()


@contextmanager
def ohif_site() -> Iterator[Site]:
    """OHIF on a free port of 127.0.0.1 (its origin is known before the DICOMweb server starts, for CORS)."""
    assert (DIST / "index.html").is_file(), "npm ci --prefix tests/e2e/ohif (scripts/test does)"
    server = _SiteServer(("127.0.0.1", 0), partial(_Handler, directory=str(DIST)))
    thread = threading.Thread(target=server.serve_forever, name="ohif-site", daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{server.server_address[1]}", server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
