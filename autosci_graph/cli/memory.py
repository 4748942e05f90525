"""``autosci memory``: ask the experiment memory what was tried.

    autosci memory query "raise the learning rate" --task gpt-bpb --status diverged --k 5
    autosci memory stats
    autosci memory export memory.jsonl
    autosci memory import memory.jsonl

The memory is the local store (``--path``, default ``$AUTOSCI_CACHE_DIR/memory``) or a Chroma
server (``--host``/``--port``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autosci_graph.errors import SettingsError

_STATUSES = ("ok", "timeout", "crash", "oom", "diverged", "no_metric", "bad_change")
_OUTCOMES = ("keep", "discard", "crash", "pending_confirmation")


def register(subparsers: Any) -> None:
    """Add the ``memory`` command and its sub-commands to the ``autosci`` parser."""
    parser = subparsers.add_parser("memory", help="query, count, export and import the experiment memory")
    sub = parser.add_subparsers(dest="memory_command", required=True, metavar="ACTION")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--path", type=Path, default=None, help="memory folder (default: $AUTOSCI_CACHE_DIR/memory)")
    common.add_argument("--host", default=None, help="Chroma server host (instead of a folder)")
    common.add_argument("--port", type=int, default=None, help="Chroma server port")
    common.add_argument("--task", default=None, help="only records of this task")

    query = sub.add_parser("query", parents=[common], help="the past experiments most similar to TEXT")
    query.add_argument("text", metavar="TEXT", help="what you want to know about, in words")
    query.add_argument("--status", choices=_STATUSES, action="append", help="only runs that ended so (repeatable)")
    query.add_argument("--outcome", choices=_OUTCOMES, action="append", help="only these lab decisions (repeatable)")
    query.add_argument("--axis", default=None, help="only experiments on this axis")
    query.add_argument("--failed", action="store_true", help="only dead ends (failed runs and discards)")
    query.add_argument("--k", type=int, default=5, help="how many results (default 5)")
    query.set_defaults(handler=_query)

    stats = sub.add_parser("stats", parents=[common], help="how many records, by task, status and outcome")
    stats.set_defaults(handler=_stats)

    export = sub.add_parser("export", parents=[common], help="write the records to FILE as JSON lines")
    export.add_argument("file", type=Path, metavar="FILE")
    export.set_defaults(handler=_export)

    imp = sub.add_parser("import", parents=[common], help="add the records of a JSON-lines FILE (idempotent)")
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.set_defaults(handler=_import)


def _open(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The memory named by the options; read-only (no writer lock) unless ``create``, so the
    CLI can look at a folder while a run is writing it."""
    from autosci_graph.memory.chroma import ChromaMemory
    from autosci_graph.memory.paths import default_memory_dir

    if args.host or args.port:
        if args.path:
            raise SettingsError("give --path or --host/--port, not both")
        return ChromaMemory(host=args.host, port=args.port, task=args.task)
    path = args.path or default_memory_dir()
    if not create and not path.exists():
        raise SettingsError(f"no experiment memory at {path} yet (runs create it); pass --path to another one")
    return ChromaMemory(path, task=args.task, read_only=not create)


def _console() -> Any:
    from rich.console import Console

    # soft_wrap: never break a printed path or id across lines (tables still fit the width).
    return Console(soft_wrap=True)


def _query(args: argparse.Namespace) -> int:
    from rich.table import Table

    from autosci_graph.memory.record import MemoryFilter

    if args.k < 1:
        raise SettingsError("--k must be at least 1")
    where = MemoryFilter(status=args.status, outcome=args.outcome, axis=args.axis, failed=True if args.failed else None)
    with _open(args) as memory:
        hits = memory.recall(args.text, args.k, where)
        location = memory.location
    table = Table(title=f"{len(hits)} most similar experiments in {location}", show_lines=True)
    for column, style in (("#", "dim"), ("sim", "cyan"), ("experiment", ""), ("result", ""), ("Δ vs champion", ""), ("what was tried", "")):
        table.add_column(column, style=style or None, overflow="fold")
    for n, hit in enumerate(hits, 1):
        r = hit.record
        result = r.status if r.status != "ok" else "finished"
        result += f"\n{r.outcome}" if r.outcome else ""
        delta = "" if r.delta is None else f"{r.delta:+.4g}"
        colour = "green" if r.outcome == "keep" else "red" if r.failed else "yellow"
        summary = r.change + (f"\n[dim]{r.hypothesis}[/dim]" if r.hypothesis else "") + (f"\n[red]{r.error[-160:]}[/red]" if r.error else "")
        table.add_row(str(n), f"{hit.score:.2f}", f"{r.task}\n{r.run_id}/{r.experiment_id}", f"[{colour}]{result}[/{colour}]", delta, summary)
    _console().print(table)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from rich.table import Table

    with _open(args) as memory:
        stats = memory.stats()
    console = _console()
    console.print(f"[bold]{stats.total}[/bold] experiments in {stats.location}  (embeddings: {stats.embedding})")
    for title, counts in (("task", stats.by_task), ("status", stats.by_status), ("outcome", stats.by_outcome), ("failure class", stats.by_failure_class)):
        if not counts:
            continue
        table = Table(title=f"by {title}", title_justify="left")
        table.add_column(title)
        table.add_column("records", justify="right")
        for key, n in counts.items():
            table.add_row(key, str(n))
        console.print(table)
    return 0


def _export(args: argparse.Namespace) -> int:
    with _open(args) as memory:
        try:
            n = memory.export_jsonl(args.file)
        except OSError as exc:
            raise SettingsError(f"cannot write {args.file}: {exc.strerror or exc}") from exc
    _console().print(f"exported {n} records to {args.file}")
    return 0


def _import(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise SettingsError(f"{args.file} does not exist or is not a file")
    with _open(args, create=True) as memory:
        try:
            n = memory.import_jsonl(args.file)
        except ValueError as exc:
            raise SettingsError(f"{exc}; nothing was imported") from exc
        total = memory.count()
    _console().print(f"imported {n} records from {args.file}; the memory now holds {total}")
    return 0
