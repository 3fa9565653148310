"""The small shared helpers of app/core: waiting, running commands, locks, temporal.toml."""

from __future__ import annotations

import itertools
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from temporalio.envconfig import ClientConfig

from app.core import envconfig
from app.core.files import locked
from app.core.procs import CommandError, run
from app.core.waiting import WaitTimeout, wait_until


def test_wait_until_returns_the_first_truthy_result() -> None:
    calls = itertools.count()
    assert wait_until(lambda: next(calls) >= 2 and "ready", what="x", timeout=5, interval=0) \
        == "ready"


def test_wait_until_retries_listed_errors_and_quotes_the_last() -> None:
    def flaky() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(WaitTimeout, match=r"the db to answer: not done within 0s.*refused"):
        wait_until(flaky, what="the db to answer", timeout=0.05, interval=0.01,
                   retry_on=(ConnectionError,))


def test_wait_until_lets_other_errors_through() -> None:
    def broken() -> bool:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        wait_until(broken, what="x", timeout=5, retry_on=(ConnectionError,))


def test_wait_until_gives_up_when_the_process_is_gone() -> None:
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match="the process exited during startup"):
        wait_until(lambda: False, what="server", timeout=30, alive=lambda: False)
    assert time.monotonic() - started < 5


def test_run_raises_the_callers_error_with_the_output_tail(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('out'); sys.exit('boom')"]
    log = tmp_path / "cmd.log"
    with pytest.raises(RuntimeError, match=r"probing failed \(exit 1\).*\nout\nboom") as err:
        run(argv, "probing", log=log)
    assert type(err.value) is CommandError
    assert "boom" in log.read_text()

    class BuildError(RuntimeError):
        pass

    with pytest.raises(BuildError):
        run(argv, "building", error=BuildError)
    assert run([sys.executable, "-c", "print('hi')"], "greeting").stdout == "hi\n"


def test_locked_excludes_a_second_holder(tmp_path: Path) -> None:
    order: list[str] = []
    lock = tmp_path / "sub" / ".lock"

    def other() -> None:
        with locked(lock):
            order.append("other")

    with locked(lock):
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "other"]


def test_the_envconfig_writer_round_trips_through_the_sdk(tmp_path: Path) -> None:
    path = tmp_path / "temporal.toml"
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"not checked until a connection is made")
    envconfig.write(path, [
        envconfig.Profile(name="local", address="127.0.0.1:7233", namespace="haul"),
        envconfig.Profile(
            name="prod", address="fe:7233", namespace="billing",
            tls=envconfig.ProfileTLS(server_name="fe", server_ca_cert_path=str(ca)),
        ),
        envconfig.Profile(name='odd "name"', address="x:1", namespace="n",
                          tls=envconfig.ProfileTLS(disabled=True)),
    ])
    local = ClientConfig.load_client_connect_config("local", config_file=str(path))
    assert (local["target_host"], local["namespace"]) == ("127.0.0.1:7233", "haul")
    prod = ClientConfig.load_client_connect_config("prod", config_file=str(path))
    assert prod["namespace"] == "billing"
    assert prod["tls"].domain == "fe"
    assert prod["tls"].server_root_ca_cert == ca.read_bytes()
    data = tomllib.loads(path.read_text())["profile"]
    assert data["prod"]["tls"] == {"server_name": "fe", "server_ca_cert_path": str(ca)}
    assert data['odd "name"']["tls"] == {"disabled": True}
