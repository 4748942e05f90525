"""Processes left running by a lab that was SIGKILLed are found by their marker and killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from autosci_graph.tools.process import kill_orphans

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="marker sweeps read /proc (Linux)")


def _sleeper(marker: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AUTOSCI_RUN_ID": marker}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True)


def test_kills_only_the_experiments_own_processes() -> None:
    orphan = _sleeper("run7-r003-t1-abc@1111")
    sibling = _sleeper("run7-r003-t1-abc-c1@2222")  # a confirmation of the same candidate: not an orphan
    try:
        time.sleep(0.2)
        assert kill_orphans("run7-r003-t1-abc@", grace_s=2.0) == 1
        assert orphan.wait(timeout=5) != 0
        assert sibling.poll() is None
    finally:
        for p in (orphan, sibling):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_nothing_to_kill_is_fine() -> None:
    assert kill_orphans("no-such-experiment@", grace_s=0.1) == 0
