"""Talk to Lightbox over gRPC: upload a file, read a header element, list, render, download.

python examples/grpc_client.py 127.0.0.1:50051 some.dcm      # LIGHTBOX_TOKEN=<API key> with auth
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc

from app.grpc import lightbox_pb2 as pb
from app.grpc import lightbox_pb2_grpc

CHUNK = 256 * 1024


def messages(path: Path) -> Iterator[pb.UploadRequest]:
    data = path.read_bytes()
    yield pb.UploadRequest(start=pb.UploadStart(file_name=path.name, expected_sha256=hashlib.sha256(data).hexdigest()))
    for start in range(0, len(data), CHUNK):
        yield pb.UploadRequest(chunk=data[start : start + CHUNK])


def main(address: str, path: Path) -> None:
    token = os.environ.get("LIGHTBOX_TOKEN")
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(address) as channel:
        lightbox = lightbox_pb2_grpc.LightboxStub(channel)  # type: ignore[no-untyped-call]
        stored = lightbox.Upload(messages(path), metadata=metadata)
        print(f"stored {stored.name} ({stored.size} bytes, already stored: {stored.already_stored})")
        name = stored.name
        attribute = lightbox.GetAttribute(pb.AttributeRequest(name=name, tag="(0008,0060)"), metadata=metadata)
        print(f"{attribute.keyword} ({attribute.vr}) = {attribute.text}")
        page = lightbox.List(pb.ListRequest(page_size=10), metadata=metadata)
        print(f"{page.total} file(s): " + ", ".join(item.name for item in page.instances))
        chunks = list(lightbox.Render(pb.RenderRequest(name=name, size=256), metadata=metadata))
        png = b"".join(chunk.data for chunk in chunks)
        print(f"render: {chunks[0].media_type}, {len(png)} bytes, ETag {chunks[0].etag}")
        head = b"".join(c.data for c in lightbox.Download(pb.DownloadRequest(name=name, length=132), metadata=metadata))
        print(f"download of the first 132 bytes ends with {head[128:]!r}")
        try:
            lightbox.GetAttribute(pb.AttributeRequest(name="no-such-file.dcm", tag="PatientName"), metadata=metadata)
        except grpc.RpcError as error:
            print(f"error: {error.code().name}: {error.details()}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
