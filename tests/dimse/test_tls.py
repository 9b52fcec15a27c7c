"""DICOM TLS (PS3.15 B): a certificate and key make the listener speak TLS; a CA requires client certificates."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.config import Settings
from tests.dimse.test_listener import associate, client, in_thread, running, with_auth
from tests.e2e.server import free_port

pytestmark = pytest.mark.anyio


def certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA), made by the openssl command."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    cert, key = certificate(tmp_path, "server")
    client_cert, _ = certificate(tmp_path, "client")
    return with_auth(
        storage_dir=tmp_path / "storage",
        dimse_port=free_port(),
        dimse_peers="ALICE@127.0.0.1:alice",
        dimse_tls_cert=cert,
        dimse_tls_key=key,
        dimse_tls_ca=client_cert,
        dimse_acse_timeout=2,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(settings) as application:
        yield application


def tls_client(settings: Settings, with_certificate: bool) -> ssl.SSLContext:
    assert settings.dimse_tls_cert is not None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.dimse_tls_cert)
    if with_certificate:
        folder = settings.dimse_tls_cert.parent
        context.load_cert_chain(folder / "client.pem", folder / "client.key")
    return context


async def test_echo_over_mutual_tls(app: FastAPI, settings: Settings) -> None:
    def echo(context: ssl.SSLContext | None) -> int | None:
        extra = {"tls_args": (context, "127.0.0.1")} if context else {}
        assoc = associate(client("ALICE"), settings, **extra)
        if not assoc.is_established:
            raw = getattr(assoc.dul.socket, "socket", None)
            if raw is not None:
                raw.close()  # pynetdicom leaves a failed requestor's socket open
            return None
        status = int(assoc.send_c_echo().Status)
        assoc.release()
        return status

    assert await in_thread(lambda: echo(tls_client(settings, with_certificate=True))) == 0x0000
    assert await in_thread(lambda: echo(tls_client(settings, with_certificate=False))) is None
    assert await in_thread(lambda: echo(None)) is None  # plain DICOM is not spoken


def test_cert_and_key_come_together(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path, "server")
    with pytest.raises(ValidationError, match="together"):
        Settings(dimse_tls_cert=cert)
    with pytest.raises(ValidationError, match="no readable file"):
        Settings(dimse_tls_cert=cert, dimse_tls_key=tmp_path / "missing.key")
    assert Settings(dimse_tls_cert=cert, dimse_tls_key=key).dimse_tls_key == key
