"""The Ray executor's parts that need no cluster: shipping a task folder, the orphan sweep, settings."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from autosci_graph.errors import SettingsError
from autosci_graph.tools import ray_node
from autosci_graph.tools.env import RUN_MARKER
from autosci_graph.tools.executors import check_kind, make_executor, ray_address
from autosci_graph.tools.process import start_ticks
from autosci_graph.tools.ray import connect


def test_a_task_folder_round_trips_through_a_bundle_with_links_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ray_node.SCRATCH_VAR, str(tmp_path / "scratch"))
    src = tmp_path / "task"
    (src / "sub").mkdir(parents=True)
    (src / "train.py").write_text("print('hi')\n")
    (src / "sub" / "data.txt").write_bytes(b"\x00\x01binary")
    os.symlink("train.py", src / "link.py")
    os.chmod(src / "train.py", 0o755)
    bundle = ray_node.pack_folder(src)
    root = ray_node.unpack_task(bundle)
    assert (root / "train.py").read_text() == "print('hi')\n"
    assert (root / "sub" / "data.txt").read_bytes() == b"\x00\x01binary"
    assert (root / "link.py").is_symlink() and os.readlink(root / "link.py") == "train.py"
    assert os.stat(root / "train.py").st_mode & 0o100
    assert ray_node.unpack_task(bundle) == root  # unpacked once per node, then reused


def test_a_bundle_cannot_write_outside_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ray_node.SCRATCH_VAR, str(tmp_path / "scratch"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(tarfile.FilterError):
        ray_node.unpack_task(buf.getvalue())
    assert not (tmp_path / "escaped.txt").exists()


def _sleeper(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env={**os.environ, **env},
                            start_new_session=True)


def test_the_sweep_kills_runs_whose_worker_is_gone_and_only_those(tmp_path: Path) -> None:
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    gone = f"{dead_owner.pid}:{start_ticks(os.getpid()) + 1}"  # a pid that is not alive with those ticks
    alive = f"{os.getpid()}:{start_ticks(os.getpid())}"
    orphan = _sleeper({ray_node.OWNER_VAR: gone, RUN_MARKER: "e1@aa", ray_node.JOB_VAR: "job1"})
    kept = _sleeper({ray_node.OWNER_VAR: alive, RUN_MARKER: "e2@bb", ray_node.JOB_VAR: "job1"})
    other_lab = _sleeper({ray_node.OWNER_VAR: alive, RUN_MARKER: "e3@cc", ray_node.JOB_VAR: "job2"})
    earlier_attempt = _sleeper({ray_node.OWNER_VAR: alive, RUN_MARKER: "e3@dd", ray_node.JOB_VAR: "job1"})
    try:
        deadline = time.time() + 10  # the children must have exec'd for /proc to show their environment
        while time.time() < deadline and not all(
                ray_node.OWNER_VAR.encode() in Path(f"/proc/{p.pid}/environ").read_bytes() for p in (orphan, kept, other_lab, earlier_attempt)):
            time.sleep(0.01)
        killed = ray_node.sweep_orphans(job="job1", experiment_id="e3")
        assert orphan.wait(timeout=5) == -9 and earlier_attempt.wait(timeout=5) == -9
        assert killed == 2
        assert kept.poll() is None and other_lab.poll() is None  # a live worker's run, another lab's same id
    finally:
        for p in (orphan, kept, other_lab, earlier_attempt):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_executor_kind_and_address_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_kind("ray") == "ray"
    with pytest.raises(SettingsError, match="expected one of local, ray"):
        check_kind("slurm")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_address(None) == "10.0.0.1:6379"  # Ray's own convention
    assert ray_address("127.0.0.1:1") == "127.0.0.1:1"  # the flag wins
    monkeypatch.delenv("RAY_ADDRESS")
    assert ray_address(None) is None


def test_a_bad_ray_address_fails_at_once_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    if ray.is_initialized():
        pytest.skip("this process is already connected to a Ray cluster")
    with pytest.raises(SettingsError, match="expected HOST:PORT"):
        connect("nonsense")
    t0 = time.monotonic()
    with pytest.raises(SettingsError, match=r"ray start --head --port=1"):
        connect("127.0.0.1:1")
    assert time.monotonic() - t0 < 10  # not Ray's own minute of retries
    assert not ray.is_initialized()


def test_make_executor_refuses_an_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(SettingsError):
        make_executor("slurm", None, tmp_path)  # type: ignore[arg-type]
