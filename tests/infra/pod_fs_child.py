"""Run the S3 blob store's real write path under a pod's filesystem rules.

Started by test_pod_filesystem.py inside a private mount namespace (`unshare --mount
--propagation private`, as root). It remounts every filesystem read-only, as a container with
`readOnlyRootFilesystem` sees it, mounts a sized tmpfs at each of the pod's writable mounts
(its emptyDirs), then writes and reads one blob through `app.core.blobstore.open_store`.
Input on stdin: {"writable": {path: sizeLimit}, "blob_dir": "s3://bucket/prefix"}. Output:
one JSON line {"ok", "error", "sandbox"}.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

KERNEL_TREES = ("/proc", "/sys", "/dev")


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as info:
        points = [line.split()[4] for line in info]
    return sorted(set(points), key=len)


def read_only_everywhere() -> None:
    """Remount / and every other mount read-only, except the kernel's own trees."""
    for point in mount_points():
        if any(point == t or point.startswith(t + "/") for t in KERNEL_TREES):
            continue
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", point], check=point == "/", capture_output=True
        )


def tmpfs_size(limit: str) -> str:
    """A Kubernetes quantity (512Mi, 4Gi) as a tmpfs size option."""
    return limit.removesuffix("i").lower()


def root_is_read_only() -> bool:
    try:
        fd = os.open("/var/haul-pod-fs-probe", os.O_CREAT | os.O_WRONLY, 0o600)
    except OSError as exc:
        return exc.errno == errno.EROFS
    os.close(fd)
    os.unlink("/var/haul-pod-fs-probe")
    return False


def main() -> None:
    request = json.loads(sys.stdin.read())
    read_only_everywhere()
    for path, size in request["writable"].items():
        options = "mode=1777" + (f",size={tmpfs_size(size)}" if size else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], check=True)
    result: dict[str, object] = {"ok": False, "error": None, "sandbox": root_is_read_only()}
    try:
        from app.core.blobstore import open_store

        store = open_store(request["blob_dir"])
        payload = os.urandom(1 << 20)
        with store.writer("pod-fs/invoice.edi") as out:
            out.write(payload)
        result["ok"] = store.get("pod-fs/invoice.edi") == payload
    except Exception as exc:  # noqa: BLE001 - reported to the test, which asserts on it
        result["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
