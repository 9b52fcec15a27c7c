"""A 100 MiB upload streamed over gRPC (and downloaded back) must not be held in the server's memory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from app.grpc import lightbox_pb2 as pb
from app.grpc import lightbox_pb2_grpc
from tests.e2e.server import free_port, run_server
from tests.hostile import test_memory
from tests.hostile.test_memory import rss_kib, write_big_multiframe

pytestmark = pytest.mark.slow
FRAMES = 200  # 512 x 512 x 2 bytes x 200 = 100 MiB
BOUND_MIB = 128


def messages(path: Path) -> Iterator[pb.UploadRequest]:
    yield pb.UploadRequest(start=pb.UploadStart(file_name="big.dcm"))
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            yield pb.UploadRequest(chunk=block)


def test_a_100_mib_grpc_upload_stays_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_memory, "FRAMES", FRAMES)
    source = tmp_path / "big.dcm"
    size = write_big_multiframe(source)
    assert size > 100 << 20
    grpc_port = free_port()
    with run_server(tmp_path, env={"LIGHTBOX_GRPC_PORT": str(grpc_port)}) as server:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = lightbox_pb2_grpc.LightboxStub(channel)  # type: ignore[no-untyped-call]
            stub.List(pb.ListRequest())  # the server is warm before the baseline
            baseline = rss_kib(server.process.pid, "VmRSS")
            stored = stub.Upload(messages(source), timeout=300)
            assert stored.size == size
            digest = hashlib.sha256()
            for chunk in stub.Download(pb.DownloadRequest(name=stored.name), timeout=300):
                digest.update(chunk.data)
        peak = rss_kib(server.process.pid, "VmHWM")
    assert digest.hexdigest() == stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    grew = (peak - baseline) // 1024
    print(f"peak RSS grew by {grew} MiB for a {size >> 20} MiB file")
    assert grew < BOUND_MIB
