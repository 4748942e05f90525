"""Recall from experiment memory, shaped for agents (:class:`RecalledMemory`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from autosci_graph.scientists.base import RecalledMemory

if TYPE_CHECKING:
    from autosci_graph.memory.base import ExperimentMemory

log = logging.getLogger(__name__)


def recall_failures(memory: "ExperimentMemory | None", text: str, *, task: str, k: int) -> list[RecalledMemory]:
    """The ``k`` past failures (crashes and discards, any run of ``task``) most similar to ``text``."""
    if memory is None or k <= 0 or not text.strip():
        return []
    hits = memory.similar_failures(text, task=task, k=k)
    return [
        RecalledMemory(
            experiment_id=h.record.experiment_id,
            text=h.record.document(),
            outcome=h.record.outcome,
            status=h.record.status,
            axis=h.record.axis,
            direction=h.record.direction,
            knobs=dict(h.record.knobs),
            delta=h.record.delta,
            score=float(h.score),
        )
        for h in hits
    ]
