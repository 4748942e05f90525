"""Real subprocesses, one purpose-built misbehaving script each (tests/integration/scripts/).

Every failure must come back as the right status, leave nothing running, and leave the executor
able to run the next experiment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autosci_graph.state import Change, RunRequest, RunResult
from autosci_graph.task import ResearchTask
from autosci_graph.tools.local import LocalExecutor
from tests.support.processes import wait_gone

ScriptsTask = Callable[..., ResearchTask]  # the conftest fixture `scripts_task`

pytestmark = pytest.mark.integration

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] not in (b"Z", b"X")


SECRETS = {
    "OPENAI_API_KEY": "sk-test-openai-0001",
    "ANTHROPIC_API_KEY": "sk-ant-test-0002",
    "HF_TOKEN": "hf_test_0003",
    "MY_SERVICE_TOKEN": "tok-test-0004",
    "DB_PASSWORD": "hunter2-test-0005",
    "SOME_CLIENT_SECRET": "secret-test-0006",
    "AWS_ACCESS_KEY_ID": "AKIATEST0007",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-test-0008",
    "AWS_PROFILE": "prod-test-0009",
    "GOOGLE_APPLICATION_CREDENTIALS": "/secret/test-0010.json",
    "AZURE_OPENAI_ENDPOINT": "https://test-0011.example",
    "LANGSMITH_API_KEY": "ls-test-0012",
}


@pytest.fixture(scope="module")
def failure_results(tmp_path_factory: pytest.TempPathFactory, scripts_task: ScriptsTask) -> Iterator[dict[str, RunResult]]:
    """Run every misbehaving script once on a 2-slot executor, then a normal run after them."""
    root = tmp_path_factory.mktemp("scripts-task") / "task"
    task = scripts_task(root, timeout=3.0, pass_env=("ALLOWED_API_KEY",))
    names = [k.removesuffix(".py") for k in task.knobs["script"].choices]  # type: ignore[union-attr]
    assert {"hang", "crash", "nan_loss", "no_metric", "flood", "binary", "printenv", "oom", "orphan"} <= set(names)
    work = tmp_path_factory.mktemp("work")
    saved = {k: os.environ.get(k) for k in [*SECRETS, "ALLOWED_API_KEY", "HARMLESS_SETTING"]}
    os.environ.update(SECRETS, ALLOWED_API_KEY="allowed-0099", HARMLESS_SETTING="plain-0100")
    try:
        with LocalExecutor(task, work, slots=2, grace_s=1.0, max_log_bytes=1024 * 1024) as ex:
            cases = {n: Change(knobs={"script": f"{n}.py"}) for n in names if n != "ok"}
            cases["diff_not_applying"] = Change(diff="--- a/ok.py\n+++ b/ok.py\n@@ -1,1 +1,1 @@\n-no such line\n+x = 1\n")
            cases["diff_non_editable"] = Change(diff="--- a/crash.py\n+++ b/crash.py\n@@ -1,1 +1,1 @@\n-\"\"\"Crashes with a Python traceback after some normal output.\"\"\"\n+import os\n")
            cases["diff_escaping"] = Change(diff="--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1,1 +1,1 @@\n-root\n+evil\n")
            cases["bad_knob"] = Change(knobs={"x": 99.0})
            requests = [RunRequest(experiment_id=name, change=change) for name, change in cases.items()]
            results = {r.experiment_id: r for r in ex.run_many(requests)}
            results["after"] = ex.run(Change(knobs={"x": 0.75}), experiment_id="after")
            yield results
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_hanging_run_is_killed_with_all_its_processes(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["hang"]
    assert r.status == "timeout"
    assert 2.5 < r.duration_s < 12
    pids = [int(p) for p in (Path(r.workspace or "") / "pids.txt").read_text().split()]
    assert len(pids) == 3  # main, TERM-ignoring child, setsid grandchild
    assert not wait_gone("hang"), "a process of the timed-out run survived"
    if r.provenance is None or r.provenance.sandbox != "none":
        return  # the pids are those of the sandbox's own PID namespace, not the host's
    deadline = time.time() + 5
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)], "a process of the timed-out run survived"


def test_a_daemon_left_behind_is_killed_and_the_run_still_counts(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["orphan"]
    assert r.status == "ok" and r.metric == 0.125
    assert r.duration_s < 3.0  # the open pipe did not hold the run until its budget
    assert not wait_gone("orphan")
    if r.provenance is None or r.provenance.sandbox != "none":
        return  # a pid of the sandbox's PID namespace
    pid = int((Path(r.workspace or "") / "daemon.pid").read_text())
    deadline = time.time() + 5
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_crash_reports_the_traceback(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["crash"]
    assert r.status == "crash"
    assert r.error is not None and "Traceback (most recent call last)" in r.error
    assert "ValueError: shape mismatch in batch 0" in r.error
    assert "load_batch" in r.error


def test_nan_loss_is_diverged(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["nan_loss"]
    assert r.status == "diverged"
    assert r.metric is None
    assert [p["step"] for p in r.curve] == [1.0, 2.0, 3.0]  # NaN left out of the curve, point kept


def test_missing_metric_is_no_metric(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["no_metric"]
    assert r.status == "no_metric"
    assert r.metrics.get("other_number") == 3.0
    assert "done" in (r.error or "")


def test_fifty_megabytes_of_output_are_capped_and_the_metric_still_found(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["flood"]
    assert r.status == "ok" and r.metric == 0.25
    size = Path(r.log_path or "").stat().st_size
    assert size < 2 * 1024 * 1024, size  # 1 MiB head + bounded tail, not 50 MB
    assert b"bytes of output dropped here" in Path(r.log_path or "").read_bytes()


def test_non_utf8_output_breaks_nothing(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["binary"]
    assert r.status == "ok" and r.metric == 0.5
    assert "\ufffd" in r.log_tail  # undecodable bytes shown as replacement characters
    RunResult.model_validate_json(r.model_dump_json())  # and the record still round-trips


def test_out_of_memory_is_oom(failure_results: dict[str, RunResult]) -> None:
    assert failure_results["oom"].status == "oom"


@pytest.mark.parametrize("case", ["diff_not_applying", "diff_non_editable", "diff_escaping", "bad_knob"])
def test_bad_changes_run_nothing(failure_results: dict[str, RunResult], case: str) -> None:
    r = failure_results[case]
    assert r.status == "bad_change"
    assert r.provenance is None  # nothing was launched
    assert r.error


def test_bad_change_messages_name_the_problem(failure_results: dict[str, RunResult]) -> None:
    assert "does not apply" in (failure_results["diff_not_applying"].error or "")
    assert "not an editable file" in (failure_results["diff_non_editable"].error or "")
    assert "escapes the workspace" in (failure_results["diff_escaping"].error or "")
    assert "outside" in (failure_results["bad_knob"].error or "")


def test_no_secret_reaches_the_run(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["printenv"]
    assert r.status == "ok"
    log = Path(r.log_path or "").read_text()
    leaked = [name for name, value in SECRETS.items() if value in log]
    assert not leaked, f"secrets visible to the run: {leaked}"
    assert "ENV ALLOWED_API_KEY=allowed-0099" in log  # the task passes this one explicitly
    assert "HARMLESS_SETTING" not in log  # not on the allow-list: an innocent name passes no more than a secret one
    assert "ENV OMP_NUM_THREADS=1" in log and "ENV AUTOSCI_DATA_DIR=" in log
    assert "ENV CUDA_VISIBLE_DEVICES=\n" in log  # a CPU slot sees no GPU


def test_executor_keeps_working_after_every_failure(failure_results: dict[str, RunResult]) -> None:
    r = failure_results["after"]
    assert r.status == "ok" and r.metric == 0.75
    assert r.curve == [{"step": 1.0, "loss": 2.0}, {"step": 2.0, "loss": 1.0}]
    assert r.provenance is not None and r.provenance.command[-1] == "--x=0.75"


def test_symlinked_editable_file_is_refused(tmp_path: Path, scripts_task: ScriptsTask) -> None:
    root = tmp_path / "task"
    task = scripts_task(root)
    outside = tmp_path / "outside.py"
    outside.write_text("print('outside')\n")
    (root / "ok.py").unlink()
    (root / "ok.py").symlink_to(outside)
    diff = "--- a/ok.py\n+++ b/ok.py\n@@ -1,1 +1,1 @@\n-print('outside')\n+print('patched')\n"
    with LocalExecutor(task, tmp_path / "work", slots=1) as ex:
        r = ex.run(Change(diff=diff))
    assert r.status == "bad_change" and "symbolic link" in (r.error or "")
    assert outside.read_text() == "print('outside')\n"
