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
import errno
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

CHUNK = 1 << 20
# Directories are walked one component at a time from the root, never through a link, so a
# link planted inside the root can neither lead out of it nor alias another blob.
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC
# Something that starts like a URL ("scheme:"), as opposed to a directory path.
_URL_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
# S3's rules for a bucket name (lowercase, 3 to 63 characters, no leading or trailing dot).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class BlobNotFoundError(KeyError):
    """No blob under that key."""


class BlobPathError(ValueError):
    """A blob path runs through a symbolic link, or through a file where a directory
    belongs."""


class BlobLocationError(ValueError):
    """HAUL_BLOB_DIR is neither a directory path nor a supported s3:// URL."""


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


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


class LocalBlobStore:
    """Blobs as files under one directory, reached without following symbolic links."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def _refused(self, key: str, where: str, err: OSError, link: bool) -> Exception:
        if err.errno == errno.ENOENT:
            return BlobNotFoundError(f"no blob {key!r} in {self.root}")
        if err.errno not in (errno.ELOOP, errno.ENOTDIR):
            return err
        what = "a symbolic link" if link else "not a directory"
        return BlobPathError(
            f"blob {key!r} in {self.root}: {where} is {what}; the blob store follows no links "
            "(one could lead out of its root), so make it a real directory or remove it"
        )

    @contextlib.contextmanager
    def _parent(self, key: str, *, create: bool) -> Iterator[tuple[int, str]]:
        """The key's directory as an fd, reached from the root one component at a time
        without following a link, and the blob's file name in it."""
        parts = _check_key(key).split("/")
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.root, _DIR_FLAGS)
        except OSError as err:
            raise self._refused(key, "the blob root", err, self.root.is_symlink()) from None
        try:
            for depth, part in enumerate(parts[:-1], 1):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                try:
                    inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as err:
                    link = _is_link(part, fd)
                    raise self._refused(key, "/".join(parts[:depth]), err, link) from None
                os.close(fd)
                fd = inner
            yield fd, parts[-1]
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[IO[bytes]]:
        with self._parent(key, create=True) as (fd, name):
            tmp = f".{name}.{secrets.token_hex(6)}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS
            out_fd = os.open(tmp, flags, 0o600, dir_fd=fd)
            try:
                with os.fdopen(out_fd, "wb") as out:
                    yield out
                # rename replaces a link named like the blob, it never writes through one
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=fd)
                raise

    def put(self, key: str, data: bytes) -> None:
        with self.writer(key) as out:
            out.write(data)

    def put_file(self, key: str, path: Path) -> None:
        with self.writer(key) as out, path.open("rb") as src:
            shutil.copyfileobj(src, out, CHUNK)

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[IO[bytes]]:
        with self._parent(key, create=False) as (fd, name):
            try:
                blob_fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=fd)
            except OSError as err:
                raise self._refused(key, key, err, _is_link(name, fd)) from None
        with os.fdopen(blob_fd, "rb") as stream:
            yield stream

    def get(self, key: str) -> bytes:
        with self.reader(key) as stream:
            return stream.read()

    def exists(self, key: str) -> bool:
        try:
            with self._parent(key, create=False) as (fd, name):
                mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        except (BlobNotFoundError, FileNotFoundError):
            return False
        if stat.S_ISLNK(mode):
            raise self._refused(key, key, OSError(errno.ELOOP, "link"), link=True)
        return stat.S_ISREG(mode)


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


def _shown(location: str) -> str:
    """A location fit for an error message: any user:password@ part masked."""
    return re.sub(r"//[^/]*@", "//****@", location)


def parse_s3(location: str) -> tuple[str, str]:
    """(bucket, prefix) of exactly `s3://bucket/prefix`; anything else is an error."""
    hint = "write it as s3://bucket/prefix (lowercase s3://) or give a local directory path"
    if not location.startswith("s3://"):
        raise BlobLocationError(
            f"HAUL_BLOB_DIR {_shown(location)!r} looks like a URL, but the blob store supports "
            f"only s3:// URLs; {hint}"
        )
    bucket, _, prefix = location[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise BlobLocationError(
            f"HAUL_BLOB_DIR {_shown(location)!r} names no valid S3 bucket (3-63 lowercase "
            f"letters, digits, '.' or '-'); {hint}"
        )
    prefix = prefix.strip("/")
    if any(c in prefix for c in "?#") or (
        prefix and any(p in ("", ".", "..") for p in prefix.split("/"))
    ):
        raise BlobLocationError(
            f"HAUL_BLOB_DIR {_shown(location)!r} has a prefix with a query, a fragment, an "
            f"empty, '.' or '..' part; {hint}"
        )
    return bucket, prefix


def open_store(location: str) -> BlobStore:
    """A store for `HAUL_BLOB_DIR`: exactly `s3://bucket/prefix`, or a local directory.

    Anything else that looks like a URL (`S3://...`, `s3:/...`, `gs://...`) is an error rather
    than a local directory with an odd name."""
    if not location:
        raise BlobLocationError(
            "no blob store configured: set HAUL_BLOB_DIR to a directory or to s3://bucket/prefix"
        )
    if _URL_LIKE.match(location):
        return S3BlobStore(*parse_s3(location))
    return LocalBlobStore(location)
