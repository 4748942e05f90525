"""The scientist interface: who thinks. The graph never talks to a model directly.

A scientist is *stateless*: every call receives the shared experimental state (a :class:`LabView`)
and returns structured actions, never prose. Three hooks, one per act of the method:

* :meth:`Scientist.organize` — post team hypotheses (at start and on regroup);
* :meth:`Scientist.propose` — turn a team's hypothesis into concrete, tagged changes;
* :meth:`Scientist.critique` — review someone else's proposal before it costs compute.

Each has an async twin (:meth:`~Scientist.aorganize`, :meth:`~Scientist.apropose`,
:meth:`~Scientist.acritique`), which the lab graph awaits under ``ainvoke``/``astream``. As in
langchain-core, the async default runs the sync method in a thread executor, so a sync scientist
works unchanged on either path; one that can wait natively (:class:`LLMScientist`, on the model's
``ainvoke``) overrides the async hooks too, and many of its calls then overlap without a thread each.

Implementations: :class:`~autosci_graph.scientists.search.SearchScientist` (offline, no LLM) and
:class:`~autosci_graph.scientists.llm.LLMScientist` (any LangChain chat model). Implementations
must be thread-safe: parallel team branches call one scientist at the same time.

A new implementation joins the contract suite, ``tests/unit/test_scientist_contract.py``, with one
entry in its ``IMPLS``; it then passes what the graph relies on: hypotheses on the task's axes, tagged
proposals inside the search space on distinct axes and never the champion again, reviews with reasons,
answers that depend on the view alone from any thread, and usage counting exactly its model calls.
"""

from __future__ import annotations

import abc
from typing import Any

from langchain_core.runnables.config import run_in_executor

from autosci_graph.agent_records import (
    AxisEffect,
    CritiqueReply,
    HypothesisDraft,
    Knowledge,
    LabView,
    OrganizeReply,
    ProposalDraft,
    ProposeReply,
    RecalledMemory,
    ReviewDraft,
)
from autosci_graph.state import Proposal, Team


class Scientist(abc.ABC):
    """Organizes teams, proposes experiments and critiques proposals from the shared state."""

    #: Short name used in logs and reports.
    name: str = "scientist"

    @abc.abstractmethod
    def organize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        """Post hypotheses for up to ``n_teams`` teams (more drafts than teams is welcome:
        the lab votes and keeps the best). Each must own at least one never-tested axis when
        any is left (``view.knowledge.untested_axes``)."""

    @abc.abstractmethod
    def propose(
        self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2
    ) -> ProposeReply:
        """Up to ``n`` tagged proposals for ``team``, on different axes, at least one bold.
        ``recalled`` holds the most similar past failures from memory."""

    @abc.abstractmethod
    def critique(
        self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]
    ) -> CritiqueReply:
        """Approve or reject a proposal written by someone else, always with a reason."""

    # -- the async hooks: by default the sync ones, in a thread executor ------------------------

    async def aorganize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        """:meth:`organize`, awaitable. Default: the sync method in a thread executor."""
        return await run_in_executor(None, self.organize, view, n_teams=n_teams, agents=agents)

    async def apropose(
        self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2
    ) -> ProposeReply:
        """:meth:`propose`, awaitable. Default: the sync method in a thread executor."""
        return await run_in_executor(None, self.propose, view, team=team, author=author, recalled=recalled, n=n)

    async def acritique(
        self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]
    ) -> CritiqueReply:
        """:meth:`critique`, awaitable. Default: the sync method in a thread executor."""
        return await run_in_executor(None, self.critique, view, proposal=proposal, reviewer=reviewer, recalled=recalled)

    def describe(self) -> dict[str, Any]:
        """What to record about this scientist in a run's report."""
        return {"name": self.name, "class": type(self).__name__}


# The records live in autosci_graph.agent_records (below the lab's rules); this is their public home.
__all__ = [
    "AxisEffect",
    "CritiqueReply",
    "HypothesisDraft",
    "Knowledge",
    "LabView",
    "OrganizeReply",
    "ProposalDraft",
    "ProposeReply",
    "RecalledMemory",
    "ReviewDraft",
    "Scientist",
]
