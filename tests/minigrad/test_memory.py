"""minigrad.memory: the malloc settings applied at import."""
import os
import subprocess
import sys

from minigrad import memory


def _import_flag(env_value):
    env = {k: v for k, v in os.environ.items() if k != "MINIGRAD_DEFAULT_MALLOC"}
    if env_value is not None:
        env["MINIGRAD_DEFAULT_MALLOC"] = env_value
    out = subprocess.run([sys.executable, "-c", "import minigrad; print(minigrad.MALLOC_TUNED)"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_opt_out_keeps_the_c_library_defaults():
    assert _import_flag("1") == "False"


def test_import_applies_the_settings_where_the_c_library_is_glibc():
    glibc = sys.platform.startswith("linux") and memory.keep_freed_memory()
    assert _import_flag(None) == str(glibc)


def test_opt_out_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("MINIGRAD_DEFAULT_MALLOC", "1")
    assert memory.keep_freed_memory() is False
