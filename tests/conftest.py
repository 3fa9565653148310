"""Session-wide test settings: a private state home and port range, a shared build cache.

Clusters that tests start live under a temporary HAUL_HOME on their own port range, so they
never touch a developer's clusters. Built binaries and jars stay in the user cache dir
(HAUL_CACHE), so a warm machine skips the builds.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_home = tempfile.mkdtemp(prefix="haul-test-home-")
# Every cluster a test starts is stopped by its fixture; the state they leave goes at exit.
atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ["HAUL_HOME"] = _home
os.environ.setdefault("HAUL_PORT_BASE", "27000")
# The test home must be traversable by the unprivileged PostgreSQL user when run as root.
os.chmod(_home, 0o755)
