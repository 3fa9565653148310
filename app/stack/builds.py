"""Build once, cache per version: temporal-server and its schema tools, and Apache Cassandra.

- temporal-server, temporal-sql-tool and temporal-cassandra-tool are `go install`ed from the
  server module at the version pinned in app/versions.py, into
  `cache_home()/<server version>/bin`.
- Apache Cassandra's jars come from Maven Central through a small pom (package data
  `cassandra-pom.xml`) and `mvn dependency:copy-dependencies`, into
  `cache_home()/cassandra-<version>/lib`.

A build runs under a file lock, into a temporary directory that is renamed into place, so two
processes never build twice and a failed build leaves nothing half-made behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from app import versions
from app.core.files import locked
from app.core.procs import run
from app.stack.registry import cache_home

# `go install` package path (under the server module) -> the name we cache the binary as.
GO_TOOLS = {
    "cmd/server": "temporal-server",
    "cmd/tools/sql": "temporal-sql-tool",
    "cmd/tools/cassandra": "temporal-cassandra-tool",
}
JAVA_MAJOR = 17


class BuildError(RuntimeError):
    """A binary or jar set could not be built or fetched; the message says what to install."""


@dataclass(frozen=True)
class TemporalBinaries:
    server: Path
    sql_tool: Path
    cassandra_tool: Path
    # Schema versions the pinned server needs: {"postgresql": "1.19", ...}.
    schema_versions: dict[str, str]


def _require(tool: str, install_hint: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise BuildError(f"`{tool}` was not found on PATH; {install_hint}")
    return found


def _run(argv: list[str], what: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return run(argv, what, env=env, cwd=cwd, error=BuildError)


# --------------------------------------------------------------------------------------------
# temporal-server and its schema tools
# --------------------------------------------------------------------------------------------


def temporal_dir(version: str = versions.TEMPORAL_SERVER) -> Path:
    return cache_home() / version


def _module_dir(go: str, module: str, version: str, env: dict[str, str]) -> Path:
    proc = _run(
        [go, "mod", "download", "-json", f"{module}@v{version}"], "go mod download", env=env
    )
    return Path(json.loads(proc.stdout)["Dir"])


def _read_schema_versions(module_dir: Path) -> dict[str, str]:
    """The schema versions the server at module_dir needs, from its schema/*/version.go."""

    def const(path: Path, name: str) -> str:
        match = re.search(rf'{name}\s*=\s*"([0-9.]+)"', path.read_text())
        if not match:
            raise BuildError(f"no {name} constant in {path}; the server module layout changed")
        return match.group(1)

    pg = module_dir / "schema" / "postgresql" / "v12" / "version.go"
    cql = module_dir / "schema" / "cassandra" / "version.go"
    return {
        "postgresql": const(pg, "Version"),
        "postgresql_visibility": const(pg, "VisibilityVersion"),
        "cassandra": const(cql, "Version"),
    }


def temporal_binaries(version: str = versions.TEMPORAL_SERVER) -> TemporalBinaries:
    """temporal-server and the schema tools at `version`, building them the first time."""
    root = temporal_dir(version)
    bindir = root / "bin"
    meta = root / "schema-versions.json"
    paths = {name: bindir / name for name in GO_TOOLS.values()}
    if not (all(p.exists() for p in paths.values()) and meta.exists()):
        with locked(cache_home() / f".build-{version}.lock"):
            if not (all(p.exists() for p in paths.values()) and meta.exists()):
                _build_go(version, root)
    return TemporalBinaries(
        server=paths["temporal-server"],
        sql_tool=paths["temporal-sql-tool"],
        cassandra_tool=paths["temporal-cassandra-tool"],
        schema_versions=json.loads(meta.read_text()),
    )


def _build_go(version: str, root: Path) -> None:
    go = _require(
        "go",
        "install Go 1.25 or newer (https://go.dev/dl/ or `apt-get install golang`) to build "
        f"temporal-server {version}",
    )
    module = versions.TEMPORAL_SERVER_MODULE
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        env = {"GOBIN": str(tmp / "bin")}
        for pkg in GO_TOOLS:
            _run(
                [go, "install", f"{module}/{pkg}@v{version}"],
                f"building {module}/{pkg} v{version} (needs network access to the Go proxy "
                "on a fresh machine)",
                env=env,
            )
        for pkg, name in GO_TOOLS.items():
            (tmp / "bin" / Path(pkg).name).rename(tmp / "bin" / name)
        schema = _read_schema_versions(_module_dir(go, module, version, env))
        (tmp / "schema-versions.json").write_text(json.dumps(schema, indent=2))
        shutil.rmtree(root / "bin", ignore_errors=True)
        (tmp / "bin").rename(root / "bin")
        (tmp / "schema-versions.json").replace(root / "schema-versions.json")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Apache Cassandra
# --------------------------------------------------------------------------------------------


def cassandra_dir(version: str = versions.CASSANDRA) -> Path:
    return cache_home() / f"cassandra-{version}"


def cassandra_lib(version: str = versions.CASSANDRA) -> Path:
    """Directory holding cassandra-all and its runtime jars, fetched the first time."""
    lib = cassandra_dir(version) / "lib"
    if not (lib / f"cassandra-all-{version}.jar").exists():
        with locked(cache_home() / f".cassandra-{version}.lock"):
            if not (lib / f"cassandra-all-{version}.jar").exists():
                _fetch_cassandra(version, lib)
    return lib


def _fetch_cassandra(version: str, lib: Path) -> None:
    java_binary()  # fail early with the Java hint, before a download that cannot run
    mvn = _require(
        "mvn",
        "install Apache Maven 3.6 or newer (`apt-get install maven`) to fetch Apache Cassandra "
        f"{version} from Maven Central",
    )
    lib.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="fetch-", dir=lib.parent))
    try:
        pom = tmp / "pom.xml"
        pom.write_bytes(resources.files("app.stack").joinpath("cassandra-pom.xml").read_bytes())
        _run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                f"-Dcassandra.version={version}",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp / 'lib'}",
            ],
            f"fetching org.apache.cassandra:cassandra-all:{version} from Maven Central",
            cwd=tmp,
        )
        if not (tmp / "lib" / f"cassandra-all-{version}.jar").exists():
            raise BuildError(f"Maven finished but cassandra-all-{version}.jar is not in {tmp}")
        shutil.rmtree(lib, ignore_errors=True)
        (tmp / "lib").rename(lib)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def java_binary() -> str:
    """The `java` to run Cassandra with ($JAVA_HOME first), checked to be Java 17."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    hint = (
        f"install a Java {JAVA_MAJOR} runtime (`apt-get install openjdk-{JAVA_MAJOR}-jre-headless`"
        f" or Temurin {JAVA_MAJOR}) and put it on PATH or in JAVA_HOME"
    )
    if not java or not Path(java).exists():
        raise BuildError(f"`java` was not found; Apache Cassandra 5.0 needs Java: {hint}")
    proc = run([java, "-version"], f"{java} -version", error=BuildError)
    match = re.search(r'version "(\d+)', proc.stderr + proc.stdout)
    major = int(match.group(1)) if match else 0
    if major != JAVA_MAJOR:
        raise BuildError(
            f"{java} is Java {major or 'of unknown version'}; haul runs Apache Cassandra "
            f"{versions.CASSANDRA} on Java {JAVA_MAJOR}: {hint}"
        )
    return java


# --------------------------------------------------------------------------------------------
# btree_gin for pgserver's PostgreSQL
# --------------------------------------------------------------------------------------------

# Temporal's Postgres visibility schema (postgresql/v12/visibility 1.2+) runs
# `CREATE EXTENSION btree_gin`. pgserver ships PostgreSQL 16 without contrib, so the extension is
# built once with PGXS against pgserver's own server headers. Its source is contrib/btree_gin
# from the PostgreSQL source package of Debian bookworm (the only release line in Debian's
# registry here); extension version 1.3 is the one PostgreSQL 16 ships too.
BTREE_GIN_SOURCE_PACKAGE = "postgresql-15"
DEBIAN_SOURCES = "deb-src http://deb.debian.org/debian bookworm main\n"


def _pg_install() -> Path:
    from app.stack.postgres import bin_path

    return Path(bin_path("postgres")).parent.parent


def ensure_btree_gin() -> None:
    """Make `CREATE EXTENSION btree_gin` work on pgserver's PostgreSQL (build once, cache)."""
    pg = _pg_install()
    ext_dir = pg / "share" / "postgresql" / "extension"
    lib_dir = pg / "lib" / "postgresql"
    if (ext_dir / "btree_gin.control").exists() and (lib_dir / "btree_gin.so").exists():
        return
    cache = cache_home() / "btree_gin-pg16"
    with locked(cache_home() / ".btree_gin.lock"):
        if not (cache / "btree_gin.so").exists():
            _build_btree_gin(pg, cache)
        for path in cache.iterdir():
            dest = lib_dir if path.suffix == ".so" else ext_dir
            shutil.copy2(path, dest / path.name)


def _build_btree_gin(pg: Path, cache: Path) -> None:
    hint = "install it (`apt-get install build-essential`) to build btree_gin for PostgreSQL"
    apt = _require("apt-get", "fetching PostgreSQL's source needs Debian's apt-get")
    make = _require("make", hint)
    _require("gcc", hint)
    tmp = Path(tempfile.mkdtemp(prefix="btree-gin-"))
    try:
        # A private apt state, so the machine's own sources and lists stay untouched.
        for sub in ("lists/partial", "cache/archives/partial", "parts", "src"):
            (tmp / sub).mkdir(parents=True)
        (tmp / "sources.list").write_text(DEBIAN_SOURCES)
        opts = [
            "-o",
            f"Dir::Etc::SourceList={tmp / 'sources.list'}",
            "-o",
            f"Dir::Etc::SourceParts={tmp / 'parts'}",
            "-o",
            f"Dir::State::Lists={tmp / 'lists'}",
            "-o",
            f"Dir::Cache={tmp / 'cache'}",
        ]
        _run([apt, *opts, "-q", "update"], "reading Debian's source index")
        _run(
            [apt, *opts, "-q", "source", "--download-only", BTREE_GIN_SOURCE_PACKAGE],
            f"downloading the {BTREE_GIN_SOURCE_PACKAGE} source package from Debian",
            cwd=tmp / "src",
        )
        import tarfile

        orig = next((tmp / "src").glob("*.orig.tar.*"))
        with tarfile.open(orig) as tar:
            members = [m for m in tar.getmembers() if "/contrib/btree_gin/" in m.name]
            tar.extractall(tmp / "src", members=members, filter="data")
        srcdir = next((tmp / "src").glob("*/contrib/btree_gin"))
        _run(
            [make, "-C", str(srcdir), "USE_PGXS=1", f"PG_CONFIG={pg / 'bin' / 'pg_config'}"],
            "building btree_gin with PGXS",
        )
        out = tmp / "out"
        out.mkdir()
        for path in [srcdir / "btree_gin.so", srcdir / "btree_gin.control"]:
            shutil.copy2(path, out / path.name)
        for path in srcdir.glob("btree_gin--*.sql"):
            shutil.copy2(path, out / path.name)
        shutil.rmtree(cache, ignore_errors=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(out), str(cache))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
