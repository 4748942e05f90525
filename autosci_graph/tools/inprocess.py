"""FunctionExecutor: the in-memory reference executor. Experiments are Python callables.

For tasks that are functions rather than scripts: synthetic benchmarks, tests of the lab logic,
and measuring orchestration overhead without a training run. Same contract as every executor:
idempotent ``submit``, at most ``slots`` runs at once, failures become results.
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from autosci_graph.state import Change, Provenance, RunRequest, RunResult
from autosci_graph.tools.base import Executor

#: ``fn(change, seed)`` returns the metric, or a dict of metrics that includes it.
Experiment = Callable[[Change, int], "float | dict[str, float]"]


class FunctionExecutor(Executor):
    """Run experiments as calls of ``fn(change, seed)`` on a pool of ``slots`` threads.

    Example::

        ex = FunctionExecutor(lambda change, seed: (change.knobs["x"] - 3) ** 2, metric_name="loss", slots=2)
        ex.run(Change(knobs={"x": 2.5})).metric   # 0.25
    """

    def __init__(self, fn: Experiment, *, metric_name: str, slots: int = 1, synchronous: bool = False) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self._fn = fn
        # Synchronous: each experiment runs inside ``submit``, so ``wait`` always finds every
        # submitted run finished and answers in submission order. Thread scheduling then plays no
        # part, and a lab over a deterministic function makes exactly the same decisions each time.
        self.synchronous = synchronous
        self._metric = metric_name
        self._slots = slots
        self._pool = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="fn-exec")
        self._futures: dict[str, Future[RunResult]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.running = 0
        self.max_running = 0

    @property
    def slots(self) -> int:
        return self._slots

    def _call(self, request: RunRequest) -> RunResult:
        with self._cond:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        slot = threading.current_thread().name
        started = time.time()
        status, metric, metrics, error = "ok", None, {}, None
        try:
            out = self._fn(request.change, request.seed)
            metrics = dict(out) if isinstance(out, dict) else {self._metric: float(out)}
            metric = metrics.get(self._metric)
            if metric is None:
                status = "no_metric"
            elif not math.isfinite(metric):
                status = "diverged"
        except MemoryError:
            status, error = "oom", "MemoryError"
        except Exception:  # a failed experiment is data
            status, error = "crash", traceback.format_exc(limit=3)
        ended = time.time()
        with self._cond:
            self.running -= 1
            self._cond.notify_all()
        return RunResult(
            experiment_id=request.experiment_id, status=status, change=request.change, seed=request.seed,  # type: ignore[arg-type]
            metric_name=self._metric, metric=metric if status == "ok" else None, metrics=metrics, error=error,
            started_at=started, ended_at=ended,
            provenance=Provenance(command=[getattr(self._fn, "__name__", "fn")], cwd="", seed=request.seed, slot=slot),
        )

    def _done(self, _: Future[RunResult]) -> None:
        with self._cond:
            self._cond.notify_all()

    def submit(self, request: RunRequest) -> None:
        with self._lock:
            if request.experiment_id in self._futures:
                return
            if self.synchronous:
                fut: Future[RunResult] = Future()
                self._futures[request.experiment_id] = fut
        if self.synchronous:
            fut.set_result(self._call(request))
            return
        with self._lock:
            fut = self._pool.submit(self._call, request)
            self._futures[request.experiment_id] = fut
        fut.add_done_callback(self._done)

    def wait(self, experiment_ids: Iterable[str], timeout: float | None = None) -> list[RunResult]:
        ids = list(experiment_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            for i in ids:
                if i not in self._futures:
                    raise KeyError(f"unknown experiment id {i!r}: submit it first")
            while True:
                done = [self._futures[i] for i in ids if self._futures[i].done()]
                if done or not ids:
                    return [f.result() for f in done]
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return []
                self._cond.wait(left)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
