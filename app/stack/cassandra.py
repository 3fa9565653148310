"""Apache Cassandra 5.0 on loopback: the local CQL stand-in for ScyllaDB.

The jars come from Maven Central (app.stack.builds). Each cluster gets a generated
cassandra.yaml with its own ports and directories, a GossipingPropertyFileSnitch whose
datacenter is the one ClusterSpec names, and a JVM sized for a small shared machine
(2 cores, 24 GiB): a 1 GiB G1 heap and two GC threads. The process is tracked by pid.

When the spec's CQL store has TLS on (`haul stack up --tls`/`--mtls`), Cassandra serves CQL only
over TLS and requires a client certificate from the cluster CA, as production Scylla does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app import versions
from app.core.procs import StartupError, ensure_ports_free, log_tail, pid_alive, spawn, stop_pid
from app.core.waiting import WaitTimeout, wait_until
from app.stack import builds, scylla, tls
from app.stack.registry import ClusterRecord
from app.stack.spec import CassandraStore
from app.stack.spec_render import dump_yaml

HEAP = "1G"
YOUNG = "256M"
CPUS = 2
RACK = "rack1"
MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"

# What Cassandra 5.0 needs from the module system on Java 17 (its jvm17-server.options).
JAVA17_MODULE_FLAGS = [
    *(
        f"--add-exports={m}=ALL-UNNAMED"
        for m in (
            "java.base/jdk.internal.misc",
            "java.base/jdk.internal.ref",
            "java.base/sun.nio.ch",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
        )
    ),
    *(
        f"--add-opens={m}=ALL-UNNAMED"
        for m in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.nio",
            "java.base/java.util.concurrent",
            "java.base/java.util",
            "java.base/java.util.concurrent.atomic",
            "java.base/java.lang",
            "java.base/java.math",
            "java.base/java.lang.reflect",
            "java.base/java.net",
        )
    ),
]

LOGBACK = """<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


def render_yaml(rec: ClusterRecord, store: CassandraStore) -> dict[str, Any]:
    """cassandra.yaml for one node on loopback with the cluster's ports and directories."""
    data = rec.cassandra_dir
    return {
        "cluster_name": f"haul-{rec.name}",
        "num_tokens": 16,
        "allocate_tokens_for_local_replication_factor": 1,
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "data_file_directories": [str(data / "data")],
        "commitlog_directory": str(data / "commitlog"),
        "saved_caches_directory": str(data / "saved_caches"),
        "hints_directory": str(data / "hints"),
        "cdc_raw_directory": str(data / "cdc_raw"),
        "commitlog_sync": "periodic",
        "commitlog_sync_period": "10000ms",
        "seed_provider": [
            {
                "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                "parameters": [{"seeds": f"127.0.0.1:{rec.port('cassandra_storage')}"}],
            }
        ],
        "listen_address": "127.0.0.1",
        "rpc_address": "127.0.0.1",
        "storage_port": rec.port("cassandra_storage"),
        "native_transport_port": store.port,
        "start_native_transport": True,
        "endpoint_snitch": "GossipingPropertyFileSnitch",
        "authenticator": "AllowAllAuthenticator",
        "authorizer": "AllowAllAuthorizer",
        "storage_compatibility_mode": "NONE",
        "concurrent_reads": 8,
        "concurrent_writes": 8,
        "concurrent_counter_writes": 8,
        "concurrent_compactors": 1,
        "memtable_heap_space": "128MiB",
        "memtable_offheap_space": "128MiB",
        "key_cache_size": "16MiB",
        "disk_failure_policy": "stop",
        "commit_failure_policy": "stop",
        "auto_snapshot": False,
        "snapshot_on_duplicate_row_detection": False,
    }


def jvm_args(rec: ClusterRecord, lib: Path) -> list[str]:
    conf = rec.cassandra_dir / "conf"
    return [
        f"-Xms{HEAP}",
        f"-Xmx{HEAP}",
        f"-Xmn{YOUNG}",
        "-Xss256k",
        "-XX:+UseG1GC",
        f"-XX:ParallelGCThreads={CPUS}",
        "-XX:ConcGCThreads=1",
        f"-XX:ActiveProcessorCount={CPUS}",
        "-XX:+AlwaysPreTouch",
        "-XX:+UseTLAB",
        "-XX:+ResizeTLAB",
        "-XX:+PerfDisableSharedMem",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.net.preferIPv4Stack=true",
        "-Djdk.attach.allowAttachSelf=true",
        "-Dio.netty.tryReflectionSetAccessible=true",
        *(f"-javaagent:{jar}" for jar in sorted(lib.glob("jamm-*.jar"))[-1:]),
        *JAVA17_MODULE_FLAGS,
        f"-Dcassandra.config=file://{conf / 'cassandra.yaml'}",
        f"-Dcassandra-rackdc.properties=file://{conf / 'cassandra-rackdc.properties'}",
        f"-Dlogback.configurationFile=file://{conf / 'logback.xml'}",
        f"-Dcassandra.storagedir={rec.cassandra_dir}",
        f"-Dcassandra.logdir={rec.logs_dir}",
        f"-Dcassandra.triggers_dir={rec.cassandra_dir / 'triggers'}",
        f"-Dcassandra.jmx.local.port={rec.port('cassandra_jmx')}",
        f"-Dcassandra.available_processors={CPUS}",
        "-Dcassandra-foreground=yes",
        "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.ring_delay_ms=1000",
        "-Dcassandra.superuser_setup_delay_ms=0",
        "-cp",
        f"{conf}:{lib}/*",
        MAIN_CLASS,
    ]


def write_config(rec: ClusterRecord, store: CassandraStore) -> Path:
    conf = rec.cassandra_dir / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (rec.cassandra_dir / "triggers").mkdir(exist_ok=True)
    config = render_yaml(rec, store)
    if store.tls.enabled:
        files = tls.ensure_certs(rec.tls_dir)
        config["client_encryption_options"] = tls.cassandra_client_encryption(files, conf)
    (conf / "cassandra.yaml").write_text(dump_yaml(config))
    (conf / "cassandra-rackdc.properties").write_text(f"dc={store.datacenter}\nrack={RACK}\n")
    (conf / "logback.xml").write_text(LOGBACK)
    return conf


def start(rec: ClusterRecord, store: CassandraStore, timeout: float = 240.0) -> int:
    """Start Cassandra for the cluster and return its pid once CQL answers."""
    lib = builds.cassandra_lib(versions.CASSANDRA)
    java = builds.java_binary()
    ensure_ports_free(
        {
            "cassandra_cql": store.port,
            "cassandra_storage": rec.port("cassandra_storage"),
            "cassandra_jmx": rec.port("cassandra_jmx"),
        }
    )
    write_config(rec, store)
    log = rec.log("cassandra")
    pid = spawn([java, *jvm_args(rec, lib)], log, cwd=rec.cassandra_dir)
    try:
        wait_cql(store, pid, log, timeout)
    except StartupError:
        stop_pid(pid)
        raise
    return pid


def wait_cql(store: CassandraStore, pid: int, log: Path, timeout: float) -> None:
    """Wait until a CQL session (with the store's TLS and client certificate) can query
    system.local, or fail with the log's tail."""
    from cassandra.cluster import NoHostAvailable

    def answers() -> bool:
        with scylla.session(store, timeout=5) as sess:
            sess.execute("select release_version from system.local")
        return True

    try:
        wait_until(
            answers,
            what=f"Cassandra (pid {pid}) to answer CQL on {store.hosts[0]}:{store.port}",
            timeout=timeout,
            interval=1.0,
            retry_on=(NoHostAvailable, OSError),
            alive=lambda: pid_alive(pid),
        )
    except WaitTimeout as err:
        raise StartupError(f"{err}; its log ({log}) says:\n{log_tail(log)}") from None
