"""Fixtures of the wa tests."""
import contextlib
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOLD = ("import sys, time; from wa.run_folder import RunLock; RunLock(sys.argv[1]).acquire(); "
        "print('locked', flush=True); time.sleep(60)")


@pytest.fixture
def another_process_holding():
    """`with another_process_holding(folder) as pid:` -- a second Python process takes the run
    folder's lock through `RunLock` and holds it; on leaving, it is killed (SIGKILL: its lock
    file stays behind, as after a crash)."""
    @contextlib.contextmanager
    def hold(folder):
        env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        other = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                                 text=True, env=env)
        try:
            assert other.stdout.readline().strip() == "locked"
            yield other.pid
        finally:
            other.kill()
            other.wait()
            other.stdout.close()
    return hold
