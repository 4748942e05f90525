"""Run environments (an allow-list, slot settings), slot detection and command building."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from autosci_graph.errors import SettingsError
from autosci_graph.task import FloatKnob, Metric, ResearchTask
from autosci_graph.tools.command import build_command
from autosci_graph.tools.env import allowed_env, build_run_env, is_allowed
from autosci_graph.tools.provenance import env_fingerprint
from autosci_graph.tools.slots import Gpu, Slot, detect_gpus, plan_slots


def _task(**extra: object) -> ResearchTask:
    return ResearchTask(
        name="t", root=Path("/tmp"), command=("{python}", "train.py", "--seed={seed}", "--data={data_dir}"),
        metric=Metric(name="m"), knobs={"lr": FloatKnob(low=1e-4, high=1.0, default=0.1, log=True)}, **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                  "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "AUTOSCI_CACHE_DIR"])
def test_safe_names_pass(name: str) -> None:
    assert is_allowed(name)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "SLACK_WEBHOOK_URL", "NOTES", "BUILD_CONFIG", "INTERNAL_DASHBOARD",
                                  "PYTHONPATH", "HF_HOME", "SSH_AUTH_SOCK", "AUTOSCI_FINAL_DIR", "path"])
def test_everything_else_is_withheld_whatever_its_name(name: str) -> None:
    assert not is_allowed(name)


def test_pass_env_adds_names_but_never_the_held_out_data() -> None:
    env = {"PATH": "/bin", "WANDB_API_KEY": "w", "NOTES": "n", "AUTOSCI_FINAL_DIR": "/held/out"}
    assert allowed_env(env, ("WANDB_API_KEY", "AUTOSCI_FINAL_DIR")) == {"PATH": "/bin", "WANDB_API_KEY": "w"}


def test_cpu_slot_environment() -> None:
    task = _task(env={"EXTRA": "1"}, pass_env=("OPENAI_API_KEY",))
    base = {"PATH": "/bin", "OPENAI_API_KEY": "sk", "HF_TOKEN": "hf", "AUTOSCI_FINAL_DIR": "/held/out", "OMP_NUM_THREADS": "64",
            "DASHBOARD": "https://grafana.internal/"}
    env = build_run_env(task, Slot(index=1, threads=3), run_id="r1", data_dir=Path("/data"), base=base)
    assert env["OPENAI_API_KEY"] == "sk" and "HF_TOKEN" not in env and "AUTOSCI_FINAL_DIR" not in env and "DASHBOARD" not in env
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # CPU slots never grab a GPU
    assert env["AUTOSCI_DATA_DIR"] == "/data" and env["AUTOSCI_RUN_ID"] == "r1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["EXTRA"] == "1"


def test_gpu_slot_environment() -> None:
    env = build_run_env(_task(), Slot(index=0, threads=1, gpu=Gpu("2", "NVIDIA H100")), run_id="r", data_dir=Path("/d"), base={})
    assert env["CUDA_VISIBLE_DEVICES"] == "2"


def test_build_command_fills_placeholders_then_fixed_then_knobs() -> None:
    task = _task(fixed={"time_budget": 5})
    argv = build_command(task, {"lr": 0.003}, seed=4, data_dir=Path("/d"), python="/py")
    assert argv == ["/py", "train.py", "--seed=4", "--data=/d", "--time_budget=5", "--lr=0.003"]


@pytest.fixture
def fake_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``nvidia-smi`` on PATH that lists two H100s (the CUDA code path, without a GPU)."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\nif [ \"$1\" = \"-L\" ]; then\n"
        "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa-1111)'\n"
        "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb-2222)'\nelse\n"
        "echo '| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4 |'\nfi\n"
    )
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return smi


def test_gpus_detected_one_slot_each(fake_nvidia_smi: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert detect_gpus() == [Gpu("0", "NVIDIA H100 80GB HBM3"), Gpu("1", "NVIDIA H100 80GB HBM3")]
    slots = plan_slots()
    assert [s.label for s in slots] == ["cuda:0 (NVIDIA H100 80GB HBM3)", "cuda:1 (NVIDIA H100 80GB HBM3)"]
    fp = env_fingerprint(slots[1])
    assert fp["gpu"] == "NVIDIA H100 80GB HBM3" and fp["device"] == "cuda:1"
    assert [s.gpu for s in plan_slots(device="cpu", slots=3)] == [None, None, None]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert detect_gpus() == [Gpu("1", "NVIDIA H100 80GB HBM3")]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")
    assert detect_gpus() == [Gpu("GPU-bbbb", "NVIDIA H100 80GB HBM3")]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus() == []


def test_cpu_slots_without_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert len(plan_slots(threads_per_slot=1)) == max(1, os.cpu_count() or 1)
    assert [s.threads for s in plan_slots(slots=2, threads_per_slot=4)] == [4, 4]
    with pytest.raises(SettingsError):
        plan_slots(device="cuda")
    with pytest.raises(SettingsError):
        plan_slots(slots=0)
