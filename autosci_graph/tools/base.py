"""The executor interface: turn a change into a :class:`RunResult`.

Executors are asynchronous at heart (``submit`` then ``wait``) so the lab can refill a device
slot the moment it frees up instead of waiting for the slowest team. ``run`` is the blocking
convenience built on the two.

Contract every implementation keeps (see ``tests/unit/test_executor_contract.py``):

* ``submit`` is idempotent by ``experiment_id``: submitting an id that is queued, running or
  finished does not start a second run. A finished result is persisted under
  ``<work_dir>/experiments/<experiment_id>/result.json`` and returned again after a restart,
  which is what lets a crashed lab resume without repeating finished experiments.
* Never more runs at once than ``slots``.
* A failed experiment is a ``RunResult`` with a failure status, never an exception.
* Thread-safe: graph branches call it from several threads.
* ``cancel`` stops at once and leaves what it stopped *unfinished*: no result, so a lab resumed
  from its checkpoint runs those experiments again (never recorded as crashes); ``close`` also
  waits until their processes are gone.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Iterable, Sequence

from autosci_graph.state import Change, RunRequest, RunResult


class Executor(abc.ABC):
    """Runs experiments of one task on a fixed set of device slots."""

    #: True when ``submit`` runs the experiment to its end before returning (a test or benchmark
    #: executor): then no slot is ever busy while the lab thinks.
    synchronous: bool = False

    @property
    @abc.abstractmethod
    def slots(self) -> int:
        """How many experiments may run at the same time."""

    @abc.abstractmethod
    def submit(self, request: RunRequest) -> None:
        """Queue a run; return at once. Idempotent by ``request.experiment_id``."""

    @abc.abstractmethod
    def wait(self, experiment_ids: Iterable[str], timeout: float | None = None) -> list[RunResult]:
        """Block until at least one of ``experiment_ids`` has finished (or ``timeout`` passes);
        return the results of all of them that have finished. Unknown ids raise ``KeyError``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop accepting work, kill running experiments, release the slots; return once their
        processes are gone. Experiments it stopped have no result (a resumed lab runs them again)."""

    def cancel(self) -> None:
        """Stop now, as for Ctrl-C: refuse new work, start killing the experiments in flight, and
        wake every waiter (``wait`` raises). Returns without waiting for the kills, so it may be
        called from a signal handler's thread or an event loop; :meth:`close` then waits for them.
        The default is :meth:`close` itself."""
        self.close()

    async def await_results(self, experiment_ids: Iterable[str], timeout: float | None = None,
                            *, poll_s: float = 1.0) -> list[RunResult]:
        """:meth:`wait` as a coroutine, for async graphs: the blocking wait runs in a worker thread
        in slices of ``poll_s``, so the event loop keeps serving, and a cancelled awaiter leaves no
        thread blocked for longer than one slice."""
        ids = list(dict.fromkeys(experiment_ids))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic()))
            done = await asyncio.to_thread(self.wait, ids, left)
            if done or not ids or (deadline is not None and time.monotonic() >= deadline):
                return done

    # -- conveniences built on the hooks ---------------------------------------------------

    def run(self, change: Change | None = None, *, seed: int = 0, experiment_id: str | None = None) -> RunResult:
        """Run one experiment and block until it finishes."""
        import uuid

        request = RunRequest(experiment_id=experiment_id or uuid.uuid4().hex[:12], change=change or Change(), seed=seed)
        self.submit(request)
        while True:
            done = self.wait([request.experiment_id])
            if done:
                return done[0]

    def run_many(self, requests: Sequence[RunRequest]) -> list[RunResult]:
        """Run several experiments on the slots, results in the order of ``requests``."""
        for r in requests:
            self.submit(r)
        pending = {r.experiment_id for r in requests}
        results: dict[str, RunResult] = {}
        while pending:
            for res in self.wait(pending):
                results[res.experiment_id] = res
                pending.discard(res.experiment_id)
        return [results[r.experiment_id] for r in requests]

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
