"""The method's pure rules: no LangGraph, no I/O, only records in and decisions out.

* :mod:`~autosci_graph.lab.promotion` — when a candidate replaces the champion (pooled evidence);
* :mod:`~autosci_graph.lab.changes` — the one place a champion and a proposal become the change to run;
* :mod:`~autosci_graph.lab.candidates` — rebasing open candidates when the champion moves;
* :mod:`~autosci_graph.lab.lead` — the lab's lead, the open candidate teams step from;
* :mod:`~autosci_graph.lab.critique` — the automatic rejections a proposal meets before a critic;
* :mod:`~autosci_graph.lab.knowledge` — facts derived from the log: noise floor, per-axis effects;
* :mod:`~autosci_graph.lab.teams` — team formation by vote, falsification, regroup triggers;
* :mod:`~autosci_graph.lab.budget` — budgets and stop rules.
* :mod:`~autosci_graph.lab.retry` — failed agent turns and rounds: formation backoff, when to give up.

Graph nodes call these for every decision, so the same rules are unit-tested without a graph.
They import only :mod:`autosci_graph.state`, :mod:`autosci_graph.task`,
:mod:`autosci_graph.agent_records` and each other.
"""
