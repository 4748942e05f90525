"""The contract every ExperimentMemory backend passes: each supplies one factory to ``memory``.

Backends: the in-memory reference, Chroma on a local folder, and Chroma over a real ``chroma run``
server started on 127.0.0.1 by the ``chroma_server`` fixture (integration).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autosci_graph.memory.base import ExperimentMemory, InMemoryMemory, MemoryFilter, MemoryRecord
from autosci_graph.memory.chroma import ChromaMemory
from tests.support.cli import stop

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
_VENV_BIN = Path(sys.executable).parent  # the `chroma` command installed beside this Python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A real Chroma server on a free local port, stopped (and killed if need be) afterwards."""
    exe = shutil.which("chroma", path=str(_VENV_BIN)) or shutil.which("chroma")
    if exe is None:
        pytest.skip("the `chroma` command is not installed")
    port = _free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = (data.parent / "chroma-server.log").open("wb")
    proc = subprocess.Popen([exe, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chroma server did not start on port {port} (exit {proc.poll()})")
            time.sleep(0.1)
        yield "127.0.0.1", port
    finally:
        stop(proc)
        log.close()


Factory = Callable[..., ExperimentMemory]


@pytest.fixture(
    params=[
        "in_memory",
        "chroma_persistent",
        pytest.param("chroma_server", marks=pytest.mark.integration),
    ]
)
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A factory of fresh, empty memories of one backend (keyword arguments go to the backend)."""
    made: list[ExperimentMemory] = []

    def make(**kwargs: object) -> ExperimentMemory:
        if request.param == "in_memory":
            mem: ExperimentMemory = InMemoryMemory(**kwargs)  # type: ignore[arg-type]
        elif request.param == "chroma_persistent":
            mem = ChromaMemory(tmp_path / "memory", **kwargs)  # type: ignore[arg-type]
        else:
            host, port = request.getfixturevalue("chroma_server")
            kwargs.setdefault("collection", f"test-{uuid.uuid4().hex[:12]}")
            mem = ChromaMemory(host=host, port=port, **kwargs)  # type: ignore[arg-type]
        made.append(mem)
        return mem

    yield make
    for mem in made:
        mem.close()


def _rec(eid: str, **kw: object) -> MemoryRecord:
    base: dict[str, object] = dict(task="t", run_id="r1", experiment_id=eid, status="ok", change=f"change {eid}")
    base.update(kw)
    return MemoryRecord.model_validate(base)


def _fixture_records() -> list[MemoryRecord]:
    lines = (FIXTURES / "memory_records.jsonl").read_text(encoding="utf-8").splitlines()
    return [MemoryRecord.model_validate_json(line) for line in lines if line.strip()]


# ---------------------------------------------------------------------------------------------


def test_add_is_idempotent_by_record_id(memory: Factory) -> None:
    mem = memory()
    first = _rec("e1", status="oom", change="batch size 1024")
    assert mem.add([first, _rec("e2")]) == 2
    # A resumed run writes the same experiment again, with its final outcome this time.
    again = first.model_copy(update={"outcome": "crash", "error": "CUDA out of memory"})
    assert mem.add(again) == 1
    assert mem.add([again, again]) == 1  # duplicates inside one batch collapse too
    assert mem.count() == 2
    assert mem.get([first.id]) == [again]


def test_same_experiment_id_in_two_runs_is_two_records(memory: Factory) -> None:
    mem = memory()
    mem.add([_rec("e1", run_id="run-a"), _rec("e1", run_id="run-b")])
    assert mem.count() == 2


def test_get_keeps_order_and_skips_unknown(memory: Factory) -> None:
    mem = memory()
    recs = [_rec(f"e{i}", timestamp=1000.0 + i) for i in range(4)]
    mem.add(recs)
    got = mem.get([recs[2].id, "t/r1/missing", recs[0].id])
    assert [r.experiment_id for r in got] == ["e2", "e0"]
    assert got[0] == recs[2]  # every field round-trips


def test_recall_ranks_by_meaning_and_scores(memory: Factory) -> None:
    mem = memory()
    mem.add(_fixture_records())
    hits = mem.recall("the GPU ran out of memory with huge batches", k=3)
    assert len(hits) == 3
    assert hits[0].record.experiment_id == "bs-oom"
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert 0.0 < hits[0].score <= 1.0 + 1e-6
    assert mem.recall("anything", k=0) == []


def test_recall_filters_apply_before_ranking(memory: Factory) -> None:
    mem = memory()
    mem.add(_fixture_records())
    hits = mem.recall("learning rate", k=50, where={"task": "solubility-rmse", "status": ["diverged", "oom"]})
    assert {h.record.experiment_id for h in hits} == {"sol-gnn-nan", "sol-bits-oom"}
    kept = mem.recall("learning rate", k=3, where=MemoryFilter(outcome="keep", axis=["learning_rate", "lr_schedule"]))
    assert [h.record.experiment_id for h in kept] == ["cosine-keep"]
    assert mem.recall("x", k=3, where={"task": "no-such-task"}) == []


def test_count_records_and_scope(memory: Factory) -> None:
    mem = memory()
    mem.add(_fixture_records())
    assert mem.count() == 36
    assert mem.count({"task": "gb1-fitness"}) == 8
    assert mem.count({"failed": True}) == mem.count() - mem.count({"outcome": "keep"})
    listed = mem.records({"task": "gpt-bpb", "outcome": "keep"})
    assert [r.experiment_id for r in listed] == ["dropout-keep", "cosine-keep", "tie-weights-keep", "gpt-rope-keep", "gpt-muon-keep"]
    assert [r.experiment_id for r in mem.records({"task": "gpt-bpb"}, limit=2)] == ["gpt-swiglu-crash", "gpt-muon-keep"]


def test_task_scope_is_the_default_filter(memory: Factory) -> None:
    mem = memory(task="gb1-fitness")
    mem.add(_fixture_records())
    assert mem.count() == 8
    assert len(mem.records()) == 8 and mem.stats().total == 8
    assert all(h.record.task == "gb1-fitness" for h in mem.recall("learning rate", k=10))
    assert mem.count({"task": "gpt-bpb"}) == 21  # an explicit task overrides the scope


def test_similar_failures_successes_dead_ends(memory: Factory) -> None:
    mem = memory()
    mem.add(_fixture_records())
    fails = mem.similar_failures("use a learning rate of 0.01 for faster training", task="gpt-bpb", k=5)
    assert len(fails) == 5 and all(h.record.failed and h.record.task == "gpt-bpb" for h in fails)
    assert "lr-diverge" in [h.record.experiment_id for h in fails[:3]]
    wins = mem.successes("solubility-rmse")
    assert [r.experiment_id for r in wins] == ["sol-morgan-radius", "sol-ensemble-keep"]  # biggest RMSE drop first
    assert [r.experiment_id for r in mem.successes("gb1-fitness")] == ["gb1-esm-features", "gb1-log-target"]  # maximize
    ends = mem.dead_ends("gpt-bpb", axis="learning_rate")
    assert [r.experiment_id for r in ends] == ["small-lr-slow", "lr-diverge"]  # newest first


def test_export_import_round_trip(memory: Factory, tmp_path: Path) -> None:
    src = memory()
    src.add(_fixture_records())
    out = tmp_path / "export.jsonl"
    assert src.export_jsonl(out) == 36
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 36 and json.loads(lines[0])["experiment_id"] == "lr-diverge"
    dst = InMemoryMemory()
    assert dst.import_jsonl(out) == 36
    assert dst.import_jsonl(out) == 36 and dst.count() == 36  # idempotent
    assert dst.get([r.id for r in _fixture_records()]) == _fixture_records()


def test_two_threads_writing_at_once_lose_nothing(memory: Factory) -> None:
    mem = memory()
    mem.recall("warm up the model before timing", k=1)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(team: str) -> None:
        try:
            barrier.wait()
            for i in range(0, 60, 6):
                mem.add([_rec(f"{team}-{j}", team=team, change=f"{team} tries setting {j}") for j in range(i, i + 6)])
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert mem.count() == 120
    assert mem.count({"team": "a"}) == mem.count({"team": "b"}) == 60


def test_recall_quality_on_paraphrased_queries(memory: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    """At least 90% of independently worded queries find their experiment in the top 3."""
    mem = memory()
    mem.add(_fixture_records())
    queries = json.loads((FIXTURES / "memory_queries.json").read_text(encoding="utf-8"))["queries"]
    assert len(queries) >= 30
    misses = []
    for q in queries:
        top = [h.record.experiment_id for h in mem.recall(q["q"], k=3)]
        if not set(top) & set(q["expect"]):
            misses.append((q["q"], top))
    rate = 1 - len(misses) / len(queries)
    with capsys.disabled():
        print(f"\n[{mem.location}] recall top-3 hit rate: {rate:.1%} ({len(queries) - len(misses)}/{len(queries)}); misses: {misses}")
    assert rate >= 0.90, misses
