"""What limited a capacity step, from the CPU its processes used."""

from __future__ import annotations

import os

from app.loadtest.models import StepCpu
from app.loadtest.server_info import CpuSampler, limit
from app.stack.registry import ClusterRecord


def _sampler() -> CpuSampler:
    return CpuSampler(ClusterRecord(name="x", backend="postgres", port_base=27000, data_dir="/x"))


def test_a_step_on_busy_cores_is_limited_by_the_host() -> None:
    cpu = StepCpu(by_role={"server": 80.0, "worker": 60.0}, host_busy_pct=97.0, cores=2)
    assert limit(cpu) == "host CPU (97% of 2 cores; cluster 140%, rest 54%)"


def test_the_worker_is_judged_against_one_core_and_the_server_against_all() -> None:
    # 70% of one core for the worker's event loop is nearer its ceiling than 120% of 4 cores.
    cpu = StepCpu(by_role={"server": 120.0, "worker": 70.0}, host_busy_pct=50.0, cores=4)
    assert limit(cpu).startswith("worker")
    cpu = StepCpu(by_role={"server": 350.0, "worker": 70.0}, host_busy_pct=80.0, cores=4)
    assert limit(cpu).startswith("server")


def test_no_samples_says_so() -> None:
    assert limit(StepCpu()) == "unknown (no CPU samples)"
    assert _sampler().window(0, 10) == StepCpu()


def test_a_window_takes_the_cpu_between_its_first_and_last_sample() -> None:
    sampler = _sampler()
    sampler.samples = [
        (100.0, {"server": 1.0, "worker": 2.0}, (100, 400)),
        (105.0, {"server": 3.0, "worker": 2.5}, (500, 1400)),
        (110.0, {"server": 9.0, "worker": 3.0}, (900, 2400)),
    ]
    cpu = sampler.window(104.0, 111.0)
    assert cpu.by_role == {"server": 120.0, "worker": 10.0}
    assert cpu.host_busy_pct == 40.0
    assert cpu.cores == (os.cpu_count() or 1)


def test_a_process_counts_the_cpu_of_its_live_children() -> None:
    """Postgres serves connections from children of the postmaster: they must count."""
    import subprocess
    import sys
    import time

    from app.loadtest.server_info import _children, _stat, _tree_cpu

    child = subprocess.Popen(
        [sys.executable, "-c", "import time\nt=time.process_time()\n"
         "while time.process_time()-t<0.5: pass\ntime.sleep(30)"]
    )  # fmt: skip
    try:
        fields = None
        for _ in range(100):
            fields = _stat(child.pid)
            if fields and sum(int(f) for f in fields[11:13]) >= 40:
                break
            time.sleep(0.1)
        own = _stat(os.getpid())
        assert own is not None
        own_cpu = sum(int(f) for f in own[11:15]) / os.sysconf("SC_CLK_TCK")
        total = _tree_cpu(os.getpid(), _children())
        assert total is not None and total >= own_cpu + 0.4
    finally:
        child.kill()
        child.wait()
