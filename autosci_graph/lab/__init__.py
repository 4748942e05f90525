"""The method's pure rules: no LangGraph, no I/O, only records in and decisions out.

* :mod:`~autosci_graph.lab.promotion` — when a candidate replaces the champion (pooled evidence);
* :mod:`~autosci_graph.lab.changes` — the one place a champion and a proposal become the change to run;
* :mod:`~autosci_graph.lab.candidates` — rebasing open candidates when the champion moves.

Graph nodes call these for every decision, so the same rules are unit-tested without a graph.
"""
