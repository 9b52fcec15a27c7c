"""Hostile names and hostile HTTP, sent byte for byte to a real server: nothing outside storage is touched."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import sample
from tests.e2e.server import RunningServer, raw_request, run_server, status_of
from tests.hostile.builders import with_new_uid

CT = sample("CT_small.dcm").read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("hostile")
    # A valid DICOM file planted next to (outside) the storage folder, as a traversal target.
    (workdir / "planted.dcm").write_bytes(CT)
    env = {"LIGHTBOX_BODY_READ_TIMEOUT_SECONDS": "1"}
    with run_server(workdir, storage=workdir / "storage", env=env) as running:
        yield running


def stored(server: RunningServer) -> list[str]:
    return sorted(p.name for p in server.storage.iterdir() if p.suffix == ".dcm")


def multipart(filename: bytes, content: bytes, boundary: bytes = b"XyZ") -> bytes:
    return (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/dicom\r\n\r\n" + content + b"\r\n--" + boundary + b"--\r\n"
    )


def post(server: RunningServer, body: bytes, boundary: bytes = b"XyZ", extra: bytes = b"") -> bytes:
    head = (
        b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n"
    )
    return raw_request(server.port, head + body)


@pytest.mark.parametrize(
    "filename",
    [
        b"../../planted.dcm",
        b"/etc/passwd",
        b"..\\..\\win.ini",
        b"a\x00b.dcm",
        b"a\r\nX-Evil: 1.dcm",
        b"A" * 4096,
        b"\xff\xfe\xfdinvalid-utf8.dcm",
        "\u202egnp.dcm".encode(),
        b"",
        b".",
        b"..",
    ],
    ids=["dotdot", "absolute", "backslash", "nul", "crlf", "4k", "bad-utf8", "rtl", "empty", "dot", "dotdot-only"],
)
def test_hostile_upload_names_stay_inside(server: RunningServer, filename: bytes) -> None:
    before = set(stored(server))
    data = with_new_uid(CT)
    response = post(server, multipart(filename, data))
    status = status_of(response)
    assert status in (201, 400), response[:300]
    after = set(stored(server)) - before
    if status == 201:
        (name,) = after
        assert "/" not in name and "\\" not in name and "\x00" not in name and len(name) < 200
        assert name.isascii()
        assert (server.storage / name).read_bytes() == data
    assert sorted(p.name for p in server.storage.parent.iterdir() if p.suffix == ".dcm") == ["planted.dcm"]


@pytest.mark.parametrize(
    "path",
    [
        b"/dicomFile/../planted.dcm",
        b"/dicomFile/..%2Fplanted.dcm",
        b"/dicomFile/%2e%2e%2fplanted.dcm",
        b"/dicomFile/%252e%252e%252fplanted.dcm",
        b"/dicomFile/%c0%ae%c0%ae%c0%afplanted.dcm",
        b"/dicomFile/planted.dcm%00",
        b"/dicomFile/%2Fetc%2Fpasswd",
        b"/dicomFile//etc/passwd",
        b"/dicomFile/..",
        b"/dicomFile/00000000-0000-4000-8000-000000000000-..%2F..%2Fplanted.dcm",
    ],
)
def test_hostile_lookup_names(server: RunningServer, path: bytes) -> None:
    request = b"GET " + path + b"?tag=(0008,0016) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = raw_request(server.port, request)
    status = status_of(response)
    assert 400 <= status < 500, response[:300]
    assert b"1.2.840.10008.5.1.4.1.1.2" not in response  # the planted file's SOP Class never leaks


def test_huge_content_length_is_refused_before_the_body(server: RunningServer) -> None:
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        b"Content-Length: 5368709120\r\n\r\n"
    )
    started = time.perf_counter()
    response = raw_request(server.port, head)  # no body is ever sent
    assert status_of(response) == 413
    assert b'"error"' in response
    assert time.perf_counter() - started < 5


def test_thousands_of_parts(server: RunningServer) -> None:
    parts = b"".join(
        b'--XyZ\r\nContent-Disposition: form-data; name="f' + str(i).encode() + b'"\r\n\r\nx\r\n' for i in range(5000)
    )
    response = post(server, parts + b"--XyZ--\r\n")
    assert status_of(response) == 400
    assert stored(server) == stored(server)


def test_huge_text_field(server: RunningServer) -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
        + b"x" * (1 << 20)
        + b"\r\n"
        + multipart(b"a.dcm", CT)
    )
    before = stored(server)
    assert status_of(post(server, body)) == 400
    assert stored(server) == before


@pytest.mark.parametrize(
    "body",
    [b"garbage without boundaries", b"--XyZ\r\nno headers end", b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nabc"],
)
def test_malformed_multipart(server: RunningServer, body: bytes) -> None:
    before = stored(server)
    assert status_of(post(server, body)) == 400
    assert stored(server) == before


def test_client_hanging_up_mid_upload_leaves_nothing(server: RunningServer) -> None:
    before = stored(server)
    body = multipart(b"a.dcm", CT * 30)
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any((server.storage / ".staging").iterdir()):
        time.sleep(0.05)
    assert list((server.storage / ".staging").iterdir()) == []
    assert stored(server) == before
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_stalled_client_is_cut_off_with_408(server: RunningServer) -> None:
    """A slow-loris upload (headers and half a body, then silence) is answered within the read timeout."""
    before = stored(server)
    body = multipart(b"slow.dcm", CT)
    head = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])
        response = sock.recv(65536)  # the server answers without waiting for the rest
        while b"nothing was kept" not in response:  # headers and body may arrive in separate segments
            more = sock.recv(65536)
            if not more:
                break
            response += more
    assert time.perf_counter() - started < 5
    assert status_of(response) == 408
    assert b"nothing was kept" in response
    assert stored(server) == before
    assert list((server.storage / ".staging").iterdir()) == []
