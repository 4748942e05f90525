"""The bubblewrap command line (GPU devices, network, mount order), the sandbox choice and the
resource caps, without running anything (tests/integration/test_sandbox.py runs them)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from autosci_graph.reports.summary import containment_lines
from autosci_graph.state import Change, Provenance, RunResult
from autosci_graph.task import Limits
from autosci_graph.tools import sandbox as sandbox_mod
from autosci_graph.tools.limits import ResourceLimits, RunLimits, limits_for, physical_memory_bytes
from autosci_graph.tools.sandbox import Sandbox, SandboxError, bwrap_command, make_sandbox


def _pairs(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_gpu_devices_are_bound_and_the_network_is_cut(tmp_path: Path) -> None:
    cmd = bwrap_command("bwrap", ["python", "train.py"], workspace=tmp_path, devices=["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"])
    assert _pairs(cmd, "--dev-bind") == ["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"]
    assert "--unshare-net" in cmd and "--unshare-pid" in cmd and "--die-with-parent" in cmd
    assert cmd[-3:] == ["--", "python", "train.py"]
    assert "--dev-bind" not in bwrap_command("bwrap", ["x"], workspace=tmp_path)  # a CPU slot sees no GPU


def test_network_only_when_the_task_asks(tmp_path: Path) -> None:
    assert "--unshare-net" not in bwrap_command("bwrap", ["x"], workspace=tmp_path, network=True)


def test_mount_order_hides_homes_then_binds_data_and_workspace(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    cmd = bwrap_command("bwrap", ["x"], workspace=ws, readonly=[data], home="/home/alice")
    tmpfs = _pairs(cmd, "--tmpfs")
    assert tmpfs[:3] == ["/tmp", "/root", "/home"]
    assert "--ro-bind" in cmd and str(data) in _pairs(cmd, "--ro-bind")
    assert "/home/alice" in _pairs(cmd, "--dir")  # an empty folder inside the /home tmpfs
    # later mounts land on top: the private /tmp first, the data and the workspace after it
    assert cmd.index("/tmp") < cmd.index(str(data)) < cmd.index("--bind")
    assert _pairs(cmd, "--bind") == [str(ws)] and _pairs(cmd, "--chdir") == [str(ws)]
    assert "--remount-ro" in cmd


def test_the_python_of_the_run_is_reachable(tmp_path: Path) -> None:
    cmd = Sandbox("bwrap", bwrap="bwrap").wrap(["python"], workspace=tmp_path)
    bound = _pairs(cmd, "--ro-bind")
    for prefix in sandbox_mod.python_paths():
        assert any(str(Path(prefix).resolve()).startswith(b) for b in bound), prefix


def test_wrap_binds_gpus_only_for_a_gpu_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_mod, "gpu_devices", lambda: ["/dev/nvidia0", "/dev/nvidiactl"])
    box = Sandbox("bwrap", bwrap="bwrap")
    assert _pairs(box.wrap(["x"], workspace=tmp_path, gpu=True), "--dev-bind") == ["/dev/nvidia0", "/dev/nvidiactl"]
    assert _pairs(box.wrap(["x"], workspace=tmp_path), "--dev-bind") == []
    assert Sandbox("none", network=True).wrap(["x", "y"], workspace=tmp_path) == ["x", "y"]


def test_missing_bubblewrap_stops_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_mod.shutil, "which", lambda name: None)
    for mode in ("auto", "bwrap"):
        with pytest.raises(SandboxError, match="apt-get install bubblewrap") as info:
            make_sandbox(mode)  # type: ignore[arg-type]
        assert "--sandbox none" in str(info.value)
    box = make_sandbox("none")
    assert not box.contained and box.network  # unsandboxed runs have the network
    with pytest.raises(SandboxError):
        make_sandbox("docker")  # type: ignore[arg-type]


def test_limits_default_to_most_of_the_ram_and_record_what_applied() -> None:
    caps = limits_for(Limits())
    assert caps.memory_bytes == int(0.9 * physical_memory_bytes()) and caps.processes == 4096
    assert limits_for(Limits(memory_mb=512, processes=0)) == ResourceLimits(memory_bytes=512 << 20, processes=None)
    assert ResourceLimits(memory_bytes=512 << 20, processes=64).as_dict() == {"memory_mb": 512, "processes": 64}


def test_preexec_sets_the_memory_cap_in_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, tuple[int, int]]] = []
    monkeypatch.setattr(resource, "setrlimit", lambda what, value: calls.append((what, value)))
    RunLimits(ResourceLimits(memory_bytes=1 << 30), "r@1").preexec()()
    assert (resource.RLIMIT_DATA, (1 << 30, 1 << 30)) in calls and (resource.RLIMIT_CORE, (0, 0)) in calls


def _result(tmp_path: Path, name: str, sandbox: str, network: bool) -> None:
    prov = Provenance(command=["x"], cwd="/", seed=0, slot="cpu:0", sandbox=sandbox, network=network)
    folder = tmp_path / "experiments" / name
    folder.mkdir(parents=True)
    r = RunResult(experiment_id=name, status="ok", change=Change(), seed=0, metric_name="m", metric=1.0, provenance=prov)
    (folder / "result.json").write_text(r.model_dump_json())


def test_the_report_says_when_the_sandbox_is_off_or_the_network_on(tmp_path: Path) -> None:
    _result(tmp_path, "a", "bwrap", False)
    assert containment_lines(tmp_path) == ["sandbox: every run in bubblewrap (read-only system, own workspace, data read-only, no network)"]
    _result(tmp_path, "b", "bwrap", True)
    _result(tmp_path, "c", "none", True)
    lines = containment_lines(tmp_path)
    assert lines[0].startswith("⚠ SANDBOX OFF: 1 of 3 runs") and lines[1].startswith("⚠ NETWORK ON: 1 of 3 runs")
