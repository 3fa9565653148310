"""The claim-check blob store: file contents and charge lists live here, workflows carry keys.

One interface, two implementations:
- `LocalBlobStore`, a directory (the embedded default, `HAUL_BLOB_DIR=/some/dir`);
- `S3BlobStore`, a bucket and prefix through boto3 (`HAUL_BLOB_DIR=s3://bucket/prefix`; the
  endpoint, region and credentials come from boto3's own configuration, such as
  `AWS_ENDPOINT_URL`).

Writes are atomic (a reader never sees half a blob) and streamed (a large invoice never has to
sit in memory): `writer(key)` yields a binary file whose contents are published on close.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

CHUNK = 1 << 20


class BlobNotFoundError(KeyError):
    """No blob under that key."""


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def writer(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def reader(self, key: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def describe(self) -> str: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"blob key {key!r} must be a relative path without '.' or '..' parts")
    return key


class LocalBlobStore:
    """Blobs as files under one directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put(self, key: str, data: bytes) -> None:
        with self.writer(key) as out:
            out.write(data)

    def put_file(self, key: str, path: Path) -> None:
        with self.writer(key) as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[IO[bytes]]:
        try:
            stream = self.path(key).open("rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {key!r} in {self.root}") from None
        with stream:
            yield stream

    def get(self, key: str) -> bytes:
        with self.reader(key) as stream:
            return stream.read()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()


class S3BlobStore:
    """Blobs as objects under a prefix of one S3 bucket (boto3; multipart for large writes)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None) -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client or boto3.client("s3")

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key))

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        # Spool to a local temporary file, then upload (multipart when large) on close.
        with tempfile.NamedTemporaryFile(prefix="haul-blob-") as tmp:
            yield tmp
            tmp.flush()
            self.client.upload_file(tmp.name, self.bucket, self._key(key))

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[IO[bytes]]:
        from botocore.exceptions import ClientError

        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFoundError(f"no blob {key!r} in {self.describe()}") from None
            raise
        body = obj["Body"]
        try:
            yield body  # a streaming, file-like body: read(n) pulls from the socket
        finally:
            body.close()

    def get(self, key: str) -> bytes:
        with self.reader(key) as stream:
            return stream.read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True


def open_store(location: str) -> BlobStore:
    """A store for `HAUL_BLOB_DIR`: `s3://bucket/prefix`, or a local directory."""
    if not location:
        raise ValueError(
            "no blob store configured: set HAUL_BLOB_DIR to a directory or to s3://bucket/prefix"
        )
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"HAUL_BLOB_DIR {location!r} names no bucket (s3://bucket/prefix)")
        return S3BlobStore(bucket, prefix)
    return LocalBlobStore(location)
