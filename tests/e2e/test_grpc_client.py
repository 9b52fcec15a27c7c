"""The README's Python client example against a real ``lightbox`` process serving gRPC."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import sample
from tests.e2e.server import free_port, run_server

ROOT = Path(__file__).resolve().parents[2]


def test_the_python_client_example_against_lightbox(tmp_path: Path) -> None:
    grpc_port = free_port()
    with run_server(tmp_path, env={"LIGHTBOX_GRPC_PORT": str(grpc_port)}) as server:
        session = subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples" / "grpc_client.py"),
                f"127.0.0.1:{grpc_port}",
                str(sample("CT_small.dcm")),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            check=False,
        )
        assert session.returncode == 0, session.stderr
        lines = session.stdout.splitlines()
        assert lines[0].startswith("stored ") and "-CT_small.dcm (39206 bytes, already stored: False)" in lines[0]
        assert lines[1].startswith("Modality (CS) = ")
        assert lines[2].startswith("1 file(s): ")
        assert lines[3].startswith("render: image/png, ")
        assert lines[4] == "download of the first 132 bytes ends with b'DICM'"
        assert lines[5].startswith("error: NOT_FOUND: no stored file is named")
        server.stop()  # SIGTERM: the gRPC server stops with the app's lifespan, cleanly
        assert "gRPC API listening on 127.0.0.1:" in server.output()
        assert "Application shutdown complete." in server.output() and "Traceback" not in server.output()
