"""The real topology of issue 12, as processes on loopback: a throwaway PostgreSQL, SeaweedFS (S3), two
``lightbox`` replicas (each with its own staging folder and blob cache) and Debian nginx running
``deploy/nginx.conf``.

One test, in phases that build on each other (a kill and a database outage in the middle):

1. uploads through nginx land on both replicas (each replica's own request log says so);
2. a file uploaded through one replica is read, rendered and deleted through the other;
3. 50 identical uploads at once, spread over both replicas, store one object and one row;
4. ``kill -9`` of one replica during 24 concurrent uploads: every acknowledged file downloads with
   its SHA-256, the surviving replica answers throughout, and after ``lightbox sweep --min-age 0``
   the bucket and the index agree exactly (one object per row, nothing else);
5. PostgreSQL stopped: both replicas answer 503 on ``/readyz`` (and on a call that needs the index),
   and both recover by themselves when it returns.

The figures (timings, counts) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from app.storage.names import object_key
from tests import nginx, postgres, seaweedfs
from tests.conftest import sample
from tests.e2e.server import LIGHTBOX, RunningServer, free_port, wait_until_ready

pytestmark = pytest.mark.slow
IDENTICAL = 50
PREFIX = "instances"
KILLED_DURING = 24


def dicom_file(rows: int = 512, columns: int = 512, seed: int = 0) -> bytes:
    """A distinct CT instance (fresh SOP Instance UID) with ``rows`` x ``columns`` 16-bit pixels."""
    dataset = pydicom.dcmread(sample("CT_small.dcm"))
    dataset.Rows, dataset.Columns = rows, columns
    pixels = np.random.default_rng(seed).integers(0, 2000, size=(rows, columns), dtype=np.uint16)
    dataset.PixelData = pixels.astype(np.int16).tobytes()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


@dataclass
class Replica:
    """One ``lightbox`` process on a fixed port (restarted on the same port after a kill)."""

    workdir: Path
    port: int
    env: dict[str, str]
    server: RunningServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log_path = self.workdir / f"replica-{self.port}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [LIGHTBOX], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.server = RunningServer(self.url, self.port, self.workdir, process, log_path)

    def ready(self) -> None:
        assert self.server is not None
        wait_until_ready(self.server, "/readyz", seconds=60)

    def kill(self) -> None:
        """kill -9 of the whole replica (its decode workers too), with no chance to clean up."""
        assert self.server is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait()

    def stop(self) -> None:
        if self.server is not None and self.server.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.server.process.pid, signal.SIGTERM)
            try:
                self.server.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def answered(self, method: str, route: str) -> int:
        """Requests this replica logged as answered (its JSON request log)."""
        assert self.server is not None
        count = 0
        for line in self.server.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                count += entry.get("method") == method and entry.get("route") == route and "status" in entry
        return count


@dataclass
class Topology:
    cluster: postgres.Cluster
    database_url: str
    endpoint: str
    bucket: str
    replicas: list[Replica]
    proxy: nginx.Nginx
    figures: dict[str, object] = field(default_factory=dict)

    def blob_keys(self) -> set[str]:
        """Every object in the bucket, whatever its key (the prefix holds nothing but stored instances)."""
        s3 = seaweedfs.client(self.endpoint)
        return {
            str(entry["Key"]).removeprefix(PREFIX + "/")
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for entry in page.get("Contents", [])
        }

    def key_of(self, name: str) -> str:
        return object_key(name)

    def index_names(self) -> set[str]:
        async def query() -> set[str]:
            connection = await asyncpg.connect(self.database_url)
            try:
                return {str(row["name"]) for row in await connection.fetch("SELECT name FROM instances")}
            finally:
                await connection.close()

        return asyncio.run(query())


@pytest.fixture
def topology(tmp_path: Path, s3_endpoint: str) -> Iterator[Topology]:
    if postgres.server_binaries() is None or nginx.nginx_binary() is None:
        message = "PostgreSQL and nginx are needed (Debian packages `postgresql`, `nginx`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with (
        postgres.throwaway_cluster() as cluster,  # its own: the test stops and restarts it
        postgres.fresh_database(cluster.url) as url,
        seaweedfs.fresh_bucket(seaweedfs.client(s3_endpoint)) as bucket,
    ):
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTBOX_", "PROMETHEUS_"))}
        replicas = []
        for number in (1, 2):
            workdir = tmp_path / f"replica-{number}"
            workdir.mkdir()
            port = free_port()
            env = {
                **inherited,
                **seaweedfs.aws_environment(),
                "LIGHTBOX_DATABASE_URL": url,
                "LIGHTBOX_STORAGE_URL": f"s3://{bucket}/{PREFIX}",
                "LIGHTBOX_S3_ENDPOINT_URL": s3_endpoint,
                "LIGHTBOX_STAGING_DIR": str(workdir / "staging"),
                "LIGHTBOX_BLOB_CACHE_DIR": str(workdir / "blob-cache"),
                "LIGHTBOX_HOST": "127.0.0.1",
                "LIGHTBOX_PORT": str(port),
                "LIGHTBOX_WORKERS": "1",
                "LIGHTBOX_LOG_FORMAT": "json",
            }
            replicas.append(Replica(workdir, port, env))
        try:
            replicas[0].start()
            replicas[0].ready()  # the first start migrates and writes the storage marker
            replicas[1].start()
            replicas[1].ready()
            upstreams = [f"127.0.0.1:{replica.port}" for replica in replicas]
            with nginx.running_nginx(upstreams, tmp_path / "nginx") as proxy:
                yield Topology(cluster, url, s3_endpoint, bucket, replicas, proxy)
        finally:
            for replica in replicas:
                replica.stop()


def upload(http: httpx.Client, data: bytes, file: str = "scan.dcm") -> httpx.Response:
    return http.post("/upload", files={"file": (file, data)})


def name_of(response: httpx.Response) -> str:
    name: str = response.json()["name"]
    return name


@contextlib.contextmanager
def watching(check: Callable[[], bool], every: float = 0.02) -> Iterator[list[int]]:
    """Run ``check`` in a loop until the block ends; yields [answers, failures] as they are counted."""
    counts = [0, 0]
    done = threading.Event()

    def loop() -> None:
        while not done.is_set():
            try:
                ok = check()
            except httpx.HTTPError:
                ok = False
            counts[0 if ok else 1] += 1
            time.sleep(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        done.set()
        thread.join()


def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition`` held; fails after ``seconds``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return round(time.monotonic() - start, 2)


def readyz(replica: Replica) -> int:
    try:
        return httpx.get(replica.url + "/readyz", timeout=5).status_code
    except httpx.TransportError:
        return 0


def test_two_replicas_behind_nginx(topology: Topology) -> None:
    one, two = topology.replicas
    figures = topology.figures
    started = time.monotonic()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with (
        httpx.Client(base_url=topology.proxy.url, timeout=120, limits=limits) as through_nginx,
        httpx.Client(base_url=one.url, timeout=60) as at_one,
        httpx.Client(base_url=two.url, timeout=60) as at_two,
    ):
        # 1. uploads through nginx land on both replicas
        files = [dicom_file(64, 64, seed) for seed in range(8)]
        answers = [upload(through_nginx, data) for data in files]
        assert [a.status_code for a in answers] == [201] * len(files), [a.text for a in answers]
        per_replica = [one.answered("POST", "/upload"), two.answered("POST", "/upload")]
        assert sum(per_replica) == len(files) and min(per_replica) >= 1, per_replica
        figures["uploads through nginx, per replica"] = per_replica
        assert any("upstream=127.0.0.1:" in line for line in topology.proxy.access_log())

        # 2. uploaded through one, read, rendered and deleted through the other
        stored = upload(at_one, files[0] + b"", "cross.dcm")  # the same bytes: already stored, its name
        assert stored.status_code == 200
        cross = name_of(stored)
        tag = at_two.get(f"/dicomFile/{cross}", params={"tag": "(0008,0018)"})
        assert tag.status_code == 200 and tag.json()["data"]["value"]
        png = at_two.get(f"/dicomFile/{cross}", params={"png": ""})
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        download = at_two.get(f"/dicomFile/{cross}", params={"download": ""})
        assert hashlib.sha256(download.content).digest() == hashlib.sha256(files[0]).digest()
        assert at_two.delete(f"/dicomFile/{cross}").status_code == 204
        assert at_one.get(f"/dicomFile/{cross}", params={"tag": "(0008,0018)"}).status_code == 404
        assert topology.key_of(cross) not in topology.blob_keys()

        # 3. 50 identical uploads at once, over both replicas: one object, one row
        before = [one.answered("POST", "/upload"), two.answered("POST", "/upload")]
        blobs_before = topology.blob_keys()
        same = dicom_file(64, 64, seed=99)
        with ThreadPoolExecutor(IDENTICAL) as pool:
            answers = list(pool.map(lambda _: upload(through_nginx, same), range(IDENTICAL)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] * (IDENTICAL - 1) + [201], [a.text for a in answers if a.status_code >= 300]
        assert len({name_of(a) for a in answers}) == 1
        spread = [one.answered("POST", "/upload") - before[0], two.answered("POST", "/upload") - before[1]]
        assert min(spread) >= 1, spread
        assert topology.blob_keys() - blobs_before == {topology.key_of(name_of(answers[0]))}
        figures["50 identical uploads, per replica"] = spread

        # 4. kill -9 of one replica during 24 concurrent uploads
        batch = [dicom_file(1024, 1024, 1000 + n) for n in range(KILLED_DURING)]  # 2 MB each
        acknowledged: dict[str, str] = {}
        failed = 0

        def one_upload(data: bytes) -> None:
            nonlocal failed
            try:
                answer = upload(through_nginx, data)
            except httpx.HTTPError:
                failed += 1
                return
            if answer.status_code == 201:
                acknowledged[name_of(answer)] = hashlib.sha256(data).hexdigest()
            else:
                failed += 1

        kept = name_of(answers[0])  # stored in phase 3: the survivor must keep answering for it
        refusals: list[str] = []

        def survivor_answers() -> bool:
            """A lookup that needs the index, at the survivor and through nginx (which retries a GET elsewhere)."""
            try:
                statuses = [
                    client.get(f"/dicomFile/{kept}", params={"tag": "(0008,0018)"}).status_code
                    for client in (at_one, through_nginx)
                ]
            except httpx.HTTPError as exc:
                refusals.append(type(exc).__name__)
                return False
            if statuses != [200, 200]:
                refusals.append(f"survivor {statuses[0]}, nginx {statuses[1]}")
            return statuses == [200, 200]

        with watching(survivor_answers) as watched, ThreadPoolExecutor(KILLED_DURING) as pool:
            futures = [pool.submit(one_upload, data) for data in batch]
            wait_for(lambda: len(acknowledged) >= 2, 60)
            two.kill()
            killed_after = len(acknowledged)
            for future in futures:
                future.result()
        assert watched[1] == 0, f"{watched[1]} of {sum(watched)} lookups refused: {refusals}"
        assert len(acknowledged) + failed == KILLED_DURING
        for name, digest in acknowledged.items():
            body = through_nginx.get(f"/dicomFile/{name}", params={"download": ""})
            assert body.status_code == 200 and hashlib.sha256(body.content).hexdigest() == digest
        sweep = subprocess.run(
            [LIGHTBOX, "sweep", "--min-age", "0"], env=one.env, capture_output=True, text=True, timeout=120
        )
        assert sweep.returncode == 0, sweep.stderr
        rows = topology.index_names()
        assert topology.blob_keys() == {topology.key_of(name) for name in rows}  # one blob per row, nothing more
        figures["kill -9 during 24 uploads"] = {
            "acknowledged": len(acknowledged),
            "acknowledged when killed": killed_after,
            "failed (not acknowledged)": failed,
            "survivor checks ok": watched[0],
            "sweep": sweep.stdout.strip(),
            "rows = blobs": len(rows),
        }

        # 5. PostgreSQL stops: both replicas 503, and back by themselves when it returns
        two.start()
        two.ready()
        topology.cluster.pause()
        try:
            down = wait_for(lambda: readyz(one) == 503 and readyz(two) == 503, 30)
            for client in (at_one, at_two):
                refused = client.get("/dicomFile")
                assert refused.status_code == 503 and "error" in refused.json(), refused.text
        finally:
            topology.cluster.resume()
        back = wait_for(lambda: readyz(one) == 200 and readyz(two) == 200, 60)
        assert at_two.get("/dicomFile").status_code == 200
        figures["PostgreSQL outage"] = {"both 503 after s": down, "both ready after restart s": back}
    figures["total s"] = round(time.monotonic() - started, 1)
    print("\ntopology figures:", json.dumps(figures, indent=2))
