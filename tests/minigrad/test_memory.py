"""minigrad.fast.keep_freed_memory: an opt-in that takes effect, and an import that changes nothing.

Each case runs in a fresh Python process (malloc settings are process-wide): it allocates
ten 16 MB NumPy arrays, frees them, and reads its resident size from /proc/self/statm."""
import os
import subprocess
import sys

import pytest

import minigrad as mg

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and os.path.exists("/proc/self/statm")
         and os.confstr("CS_GNU_LIBC_VERSION")),
    reason="the malloc settings exist only in glibc, and RSS is read from Linux's /proc")

MB = 1 << 20
SCRIPT = """
import os
import numpy as np
{setup}
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
arrays = [np.ones(2 * 1024 * 1024) for _ in range(10)]    # ten 16 MB arrays, touched
held = rss()
del arrays
print(held, rss())
"""


def _rss_with_and_after(setup, env_value=None):
    env = {k: v for k, v in os.environ.items() if k != "MINIGRAD_DEFAULT_MALLOC"}
    if env_value is not None:
        env["MINIGRAD_DEFAULT_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(setup=setup)], env=env,
                         capture_output=True, text=True, check=True)
    held, after = (int(v) for v in out.stdout.split())
    return held, after


def test_import_leaves_malloc_alone():
    """After a plain `import minigrad` freed arrays go back to the system."""
    held, after = _rss_with_and_after("import minigrad")
    assert held - after > 120 * MB, (held / MB, after / MB)


def test_keep_freed_memory_keeps_freed_arrays_resident():
    held, after = _rss_with_and_after("import minigrad\nassert minigrad.fast.keep_freed_memory()")
    assert held - after < 20 * MB, (held / MB, after / MB)


def test_opt_out_keeps_the_c_library_defaults():
    held, after = _rss_with_and_after(
        "import minigrad\nassert minigrad.fast.keep_freed_memory() is False", env_value="1")
    assert held - after > 120 * MB, (held / MB, after / MB)


def test_opt_out_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("MINIGRAD_DEFAULT_MALLOC", "1")
    assert mg.fast.keep_freed_memory() is False
