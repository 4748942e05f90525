"""The experiment-memory interface: every run becomes a record agents can recall.

OWNED BY THE MEMORY WORK (issue 3). The lab graph relies on exactly these names:

* ``MemoryRecord.from_result(result, *, task, run_id, team, axis, direction, hypothesis,
  champion_metric, minimize)`` -> MemoryRecord
* ``ExperimentMemory.add(records)`` (idempotent by ``record.id`` = experiment id)
* ``ExperimentMemory.recall(text, k=5, where=None)`` -> list[RecallHit] (``.record``, ``.score``)
* ``ExperimentMemory.similar_failures(text, *, task, k=5)`` -> list[RecallHit]
* ``ExperimentMemory.count(where=None)`` -> int
"""
