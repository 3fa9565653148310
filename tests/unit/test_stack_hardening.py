"""The local stack touches only what it manages: its own processes (by identity, not by a pid
number alone), its own cluster directories (by safe names), its secrets (owner-only from the
first byte), its blob root (no links) and ports temporal-server can store."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.core import blobstore, files
from app.core.blobstore import BlobLocationError, BlobPathError, LocalBlobStore, open_store
from app.core.procs import ProcStamp, pid_alive, stamp, stop_pid
from app.stack import cluster, postgres, tls
from app.stack.registry import (
    BLOCK_SIZE,
    ClusterNameError,
    ClusterRecord,
    PortBlockError,
    Registry,
    check_block,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def bystander() -> Iterator[int]:
    """A live process that haul did not start: the one a stale pid might now name."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True
    )
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "home")


@pytest.fixture
def no_chmod(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Disable chmod by path: a file then keeps the mode it had before its first byte was
    written (at creation, or set on the still empty file through its descriptor)."""
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    monkeypatch.setattr(Path, "chmod", lambda *a, **k: None)
    old = os.umask(0o022)
    yield
    os.umask(old)


def _record(registry: Registry, name: str, **fields: object) -> ClusterRecord:
    rec = ClusterRecord(
        name=name, backend="dev", port_base=20000, data_dir=str(registry.data_dir(name)),
        **fields,  # type: ignore[arg-type]
    )
    registry.put(rec)
    rec.path.mkdir()
    return rec


# --- processes: a recorded pid is signalled only while it names the process we started ------


@pytest.mark.parametrize(
    "wrong",
    [
        lambda s: ProcStamp(start_time=s.start_time + 1, exe=s.exe),
        lambda s: ProcStamp(start_time=s.start_time, exe="/usr/bin/some-other-binary"),
    ],
    ids=["start-time", "executable"],
)
def test_stop_pid_leaves_alone_a_process_that_is_not_the_recorded_one(
    bystander: int, wrong: object
) -> None:
    now = stamp(bystander)
    assert now is not None and now.exe == os.path.realpath(sys.executable)
    assert stop_pid(bystander, timeout=2, expect=wrong(now)) is False  # type: ignore[operator]
    assert pid_alive(bystander)
    assert stop_pid(bystander, timeout=5, expect=now) is True
    assert not pid_alive(bystander)


def test_down_signals_only_pids_that_still_name_the_recorded_process(
    registry: Registry, bystander: int
) -> None:
    ours = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        rec = _record(registry, "mixed")
        rec.track("worker", ours.pid)
        # The pid of a process that exited, since reused by an unrelated one: same number,
        # another start time (and a legacy role recorded with no identity at all).
        real = stamp(bystander)
        assert real is not None
        rec.pids["temporal"] = bystander
        rec.stamps["temporal"] = ProcStamp(start_time=real.start_time - 7, exe=real.exe)
        rec.pids["postgres"] = bystander
        registry.put(rec)
        assert not registry.get("mixed").running("temporal")  # type: ignore[union-attr]
        cluster.down("mixed", registry=registry)
        assert ours.wait(timeout=10) is not None  # ours was stopped
        assert pid_alive(bystander)  # the stranger was not
        assert registry.get("mixed").pids == {}  # type: ignore[union-attr]
    finally:
        ours.kill()
        ours.wait()


# --- names: checked wherever a name enters --------------------------------------------------

BAD_NAMES = ["../other", "a/../b", "", "Prod", "x y", 'x"]\n[evil', "-x", "a.json", "a" * 33]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_cluster_names_are_refused_everywhere_they_enter(
    registry: Registry, name: str
) -> None:
    for attempt in (
        lambda: registry.get(name),
        lambda: registry.remove(name),
        lambda: registry.data_dir(name),
        lambda: cluster.up(name, "dev", registry=registry),
        lambda: cluster.down(name, purge=True, registry=registry),
    ):
        with pytest.raises(ClusterNameError, match="lowercase letters, digits"):
            attempt()
    with pytest.raises(ValueError, match="lowercase letters, digits"):
        ClusterRecord(name=name, backend="dev", port_base=20000, data_dir="/nowhere")
    assert not registry.dir.exists() or not list(registry.dir.glob("*.json"))


def test_down_purge_of_a_crafted_name_leaves_another_cluster_alone(registry: Registry) -> None:
    _record(registry, "a")
    other = _record(registry, "b")
    (other.path / "precious").write_text("data")
    with pytest.raises(ClusterNameError):
        cluster.down("a/../b", purge=True, registry=registry)
    assert (other.path / "precious").exists() and registry.get("b") is not None


def test_purge_deletes_the_registry_directory_not_a_path_the_record_claims(
    registry: Registry, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir()
    rec = _record(registry, "c")
    rec.data_dir = str(elsewhere)
    registry.put(rec)
    cluster.down("c", purge=True, registry=registry)
    assert elsewhere.exists() and not registry.data_dir("c").exists()


def test_a_bad_record_file_is_skipped_and_the_rest_listed(registry: Registry) -> None:
    _record(registry, "good")
    (registry.dir / "Bad.json").write_text('{"name": "Bad"}')
    assert [r.name for r in registry.all()] == ["good"]


def test_the_cli_refuses_an_unsafe_name_before_doing_anything() -> None:
    from app.cli.stack import app

    done = CliRunner().invoke(app, ["down", "a/../b", "--purge"])
    assert done.exit_code == 2 and "lowercase letters" in done.output


# --- secrets: owner-only from the first byte ------------------------------------------------


def test_the_cluster_record_holding_the_password_is_owner_only(
    registry: Registry, no_chmod: None
) -> None:
    _record(registry, "s", postgres_password="hunter2hunter2")
    assert _mode(registry.dir / "s.json") == 0o600
    assert _mode(registry.dir) == 0o700 and _mode(registry.home) == 0o700


def test_keys_and_the_ca_directory_are_owner_only_from_creation(
    tmp_path: Path, no_chmod: None
) -> None:
    certs = tls.ensure_certs(tmp_path / "tls")
    assert _mode(certs.key) == 0o600 and _mode(tmp_path / "tls" / "ca-key.pem") == 0o600
    assert _mode(tmp_path / "tls") == 0o700
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "pg_hba.conf").write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    tls.prepare_postgres(pgdata, certs)
    assert _mode(pgdata / "server.key") == 0o600


def test_initdb_reads_its_password_from_a_file_that_was_never_readable_by_others(
    tmp_path: Path, no_chmod: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    def initdb(argv: list[str], **_: object) -> None:
        seen.append(_mode(Path(argv[argv.index("--pwfile") + 1])))

    monkeypatch.setattr(postgres, "_run_as", lambda: None)
    monkeypatch.setattr(postgres.subprocess, "run", initdb)
    postgres.init_cluster(tmp_path / "pgdata", "haul", "s3cret", bindir=tmp_path)
    assert seen == [0o600]
    assert not (tmp_path / ".pgpass-init").exists()


def test_traversal_for_the_postgres_user_adds_only_search_rights(tmp_path: Path) -> None:
    state = files.private_dir(tmp_path / "state" / "clusters" / "x")
    (state / "pgdata").mkdir()
    postgres._traversable(state / "pgdata")
    assert _mode(state) == 0o711 and _mode(tmp_path / "state") == 0o711


SECRET_DSNS = [
    "postgresql://haul:s3cretpw@127.0.0.1:5432/haul",
    "host=127.0.0.1 user=haul password=s3cretpw dbname=haul",
    "postgresql://haul@127.0.0.1/haul?password=s3cretpw",
]


@pytest.mark.parametrize("dsn", SECRET_DSNS)
def test_a_password_on_the_command_line_is_refused(dsn: str) -> None:
    from app.cli.db import app

    done = CliRunner().invoke(app, ["migrate", "--dsn", dsn])
    assert done.exit_code == 2
    assert "HAUL_DATABASE_URL" in done.output and "--dsn-file" in done.output
    assert "s3cretpw" not in done.output


def test_a_dsn_comes_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from app.cli.db import resolve_dsn

    dsn_file = tmp_path / "dsn"
    dsn_file.write_text(SECRET_DSNS[0] + "\n")
    assert resolve_dsn(None, dsn_file=dsn_file) == SECRET_DSNS[0]
    monkeypatch.setenv("HAUL_DATABASE_URL", SECRET_DSNS[1])
    assert resolve_dsn(None) == SECRET_DSNS[1]
    assert resolve_dsn(None, "postgresql://haul@127.0.0.1/x") == "postgresql://haul@127.0.0.1/x"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(typer.BadParameter, match="empty"):
        resolve_dsn(None, dsn_file=tmp_path / "empty")


# --- the blob store: no links, and only locations it supports -------------------------------


@pytest.fixture
def linked(tmp_path: Path) -> tuple[LocalBlobStore, Path]:
    root, outside = tmp_path / "blobs", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"not a blob")
    (root / "dir").symlink_to(outside)
    (root / "file").symlink_to(outside / "secret")
    (root / "real").mkdir()
    (root / "real" / "inner").symlink_to(root / "real")
    return LocalBlobStore(root), outside


@pytest.mark.parametrize("key", ["dir/secret", "dir/new", "file", "real/inner/x"])
def test_the_blob_store_follows_no_link_in_or_out_of_its_root(
    linked: tuple[LocalBlobStore, Path], key: str
) -> None:
    store, outside = linked
    with pytest.raises(BlobPathError, match="symbolic link"):
        store.get(key)
    with pytest.raises(BlobPathError):
        store.exists(key)
    if key != "file":
        with pytest.raises(BlobPathError, match="symbolic link"):
            store.put(key, b"x")
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_bytes() == b"not a blob"


def test_a_blob_written_over_a_link_replaces_the_link_not_its_target(
    linked: tuple[LocalBlobStore, Path],
) -> None:
    store, outside = linked
    store.put("file", b"mine")
    assert store.get("file") == b"mine" and not (store.root / "file").is_symlink()
    assert (outside / "secret").read_bytes() == b"not a blob"


def test_a_blob_root_that_is_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "root").symlink_to(tmp_path / "real")
    with pytest.raises(BlobPathError, match="blob root"):
        LocalBlobStore(tmp_path / "root").put("a", b"x")


@pytest.mark.parametrize(
    "location",
    ["S3://bucket/p", "s3:/bucket/p", "s3:bucket", "gs://bucket/p", "s3://", "s3://Bucket/p",
     "s3://bucket/p?x=1", "s3://bucket/a/../b", "file:///tmp/x", "s3://key:pw@bucket/p"],
)
def test_a_location_that_looks_like_a_url_must_be_exactly_s3(location: str) -> None:
    with pytest.raises(BlobLocationError, match="s3://bucket/prefix") as err:
        open_store(location)
    assert ":pw@" not in str(err.value)


def test_s3_locations_and_directories_parse(tmp_path: Path) -> None:
    assert blobstore.parse_s3("s3://my-bucket.eu/some/prefix/") == ("my-bucket.eu", "some/prefix")
    assert blobstore.parse_s3("s3://bkt") == ("bkt", "")
    assert isinstance(open_store(str(tmp_path / "s3:x")), LocalBlobStore)
    assert isinstance(open_store("relative/dir"), LocalBlobStore)


# --- port blocks: a postgres/cassandra cluster's ports must fit a smallint -----------------


def test_a_block_reaching_the_smallint_limit_is_refused_for_stored_backends() -> None:
    last_ok = 32768 - BLOCK_SIZE
    for backend in ("postgres", "cassandra"):
        assert check_block(last_ok, backend) == last_ok
        with pytest.raises(PortBlockError, match="smallint.*--port-base 32748"):
            check_block(last_ok + 1, backend)
        with pytest.raises(PortBlockError, match="smallint"):
            check_block(43000, backend)
    assert check_block(43000, "dev") == 43000
    with pytest.raises(PortBlockError, match="1024-65535"):
        check_block(65530, "dev")


def test_allocation_stays_below_the_limit_or_says_why(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAUL_PORT_BASE", str(32768 - 2 * BLOCK_SIZE))
    with pytest.raises(PortBlockError, match="smallint"):
        registry.allocate_block(40000, "postgres")
    taken = _record(registry, "first")
    taken.port_base = 32768 - 2 * BLOCK_SIZE
    registry.put(taken)
    with registry.locked():
        # The next free block is the last one wholly below 32768 ... unless a stray
        # listener holds it, which the allocator also skips.
        base = registry.allocate_block(None, "postgres")
    assert base + BLOCK_SIZE - 1 < 32768
    second = _record(registry, "second")
    second.port_base = base
    registry.put(second)
    with pytest.raises(RuntimeError, match="no free port block"):
        registry.allocate_block(None, "cassandra")
    assert registry.allocate_block(None, "dev") >= 32768
    monkeypatch.setenv("HAUL_PORT_BASE", "40000")
    with pytest.raises(PortBlockError, match="HAUL_PORT_BASE=40000"):
        registry.allocate_block(None, "postgres")


def test_up_refuses_such_a_block_before_starting_anything(registry: Registry) -> None:
    with pytest.raises(PortBlockError, match="smallint"):
        cluster.up("high", "postgres", port_base=43000, registry=registry)
    assert registry.get("high") is None and not registry.data_dir("high").exists()
