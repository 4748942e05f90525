"""Run outputs: ``results.tsv``, ``progress.png`` and ``report.md`` from a run's final state."""

from autosci_graph.reports.summary import RunSummary, summarize
from autosci_graph.reports.writer import write_report

__all__ = ["RunSummary", "summarize", "write_report"]
