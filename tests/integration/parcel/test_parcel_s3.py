"""The S3 blob store against moto's S3 server on loopback, alone and under the pipeline."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from temporalio.client import Client

from app.core.blobstore import BlobNotFoundError, S3BlobStore, open_store
from app.core.settings import Settings
from app.domains.parcel.models import index_blob_key
from app.platform.client import HaulClient
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file
from tests.parcel_expected import SHIPPED

SAMPLE = Path(__file__).resolve().parents[3] / "app" / "formats" / "samples"
BUCKET = "haul-parcel-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in (
        "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


def test_s3_store_round_trips_streams_and_reports_missing_keys(
    s3_endpoint: str, tmp_path: Path
) -> None:
    store = open_store(f"s3://{BUCKET}/unit")
    assert isinstance(store, S3BlobStore)
    store.put("a/b.json", b'{"x": 1}')
    assert store.get("a/b.json") == b'{"x": 1}'
    assert store.exists("a/b.json") and not store.exists("a/missing")
    with pytest.raises(BlobNotFoundError):
        store.get("a/missing")
    # a streamed write bigger than boto3's multipart threshold, read back as a stream
    big = bytes(range(256)) * (40 * 1024)  # 10 MiB
    with store.writer("big/blob") as out:
        for start in range(0, len(big), 1 << 20):
            out.write(big[start : start + (1 << 20)])
    with store.reader("big/blob") as stream:
        parts = iter(lambda: stream.read(1 << 20), b"")
        assert b"".join(parts) == big
    local = tmp_path / "file.bin"
    local.write_bytes(big[:1000])
    store.put_file("files/file.bin", local)
    assert store.get("files/file.bin") == big[:1000]
    with pytest.raises(ValueError):
        store.put("../escape", b"")
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="unit/")
    assert {o["Key"] for o in listed["Contents"]} == {
        "unit/a/b.json", "unit/big/blob", "unit/files/file.bin"}


async def test_pipeline_runs_on_the_s3_store(
    s3_endpoint: str, client: Client, haul_client: HaulClient, task_queue: str,
    parcel_env: ParcelEnv,
) -> None:
    location = f"s3://{BUCKET}/pipeline"
    env = ParcelEnv(parcel_env.dsn, parcel_env.blobs, Settings(
        database_url=parcel_env.dsn, blob_dir=location), parcel_env.database)
    store = open_store(location)
    path = SAMPLE / "fedex_billing_sample.csv"
    data = path.read_bytes().replace(b"\r\n", b"\n")  # new content: not ingested before
    copy = Path(os.environ.get("TMPDIR", "/tmp")) / f"s3-{task_queue}.csv"
    copy.write_bytes(data)
    try:
        async with parcel_worker(client, task_queue, env):
            summary, ran = await run_file(haul_client, env, copy, task_queue,
                                          submit_blobs=store)
    finally:
        copy.unlink()
    expected = SHIPPED["fedex_billing_sample.csv"]  # written down by hand, not parsed
    assert ran and summary.outcome == "completed"
    assert summary.invoices == len(expected)
    assert summary.charges == sum(f.charges for f in expected)
    assert store.exists(index_blob_key(summary.content_hash))
    assert not parcel_env.blobs.exists(index_blob_key(summary.content_hash))
