"""``autosci run --approve``: the human critic at the terminal.

The lab graph stops at an ``interrupt()`` for each proposal a team chose
(:mod:`autosci_graph.graphs.approval`); :class:`TerminalApprover` shows the payload and reads the
verdict from stdin, which the runner resumes the graph with::

    a | approve                  run it as proposed
    r REASON | reject REASON     do not run it; the reason is recorded as the human's review
    e K=V [K=V ...] | edit ...   run it with these knob values (checked again by the rules)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import IO, Any, Callable

from rich.console import Console

from autosci_graph.cli.experiment import parse_literal, parse_pairs
from autosci_graph.errors import AutosciError, SettingsError

PROMPT = "approve [a], reject with a reason [r REASON], or edit knobs [e K=V ...]: "


def require_terminal(stdin: IO[str] | None = None) -> None:
    """``--approve`` reads its answers at a terminal: refuse a pipe or a file before anything runs."""
    stream = stdin if stdin is not None else sys.stdin
    if stream is None or not stream.isatty():
        raise SettingsError("--approve asks for each verdict at a terminal, but stdin is not one; run it in a "
                            "terminal, or serve the lab (langgraph dev) and answer its interrupts with a client")


def parse_answer(line: str) -> dict[str, Any]:
    """The verdict in one typed line; ``SettingsError`` with a hint when it is not one."""
    word, _, rest = line.strip().partition(" ")
    word, rest = word.lower(), rest.strip()
    if word in ("a", "approve") and not rest:
        return {"action": "approve"}
    if word in ("r", "reject"):
        if not rest:
            raise SettingsError("a rejection needs a reason: r REASON")
        return {"action": "reject", "reason": rest}
    if word in ("e", "edit"):
        if not rest:
            raise SettingsError("an edit needs knob values: e lr=0.01 width=64")
        return {"action": "edit", "knobs": {k: parse_literal(v) for k, v in parse_pairs(rest.split(), "edit").items()}}
    raise SettingsError(f"{line.strip()!r} is not an answer; type a, r REASON or e K=V ...")


def describe(payload: dict[str, Any]) -> list[str]:
    """The proposal as lines for the terminal: what changes, why, its diff and its reviews."""
    tags = f"{payload.get('axis')} {payload.get('direction')}" + (" (bold)" if payload.get("bold") else "")
    lines = [f"[autosci] approval {payload.get('position')}/{payload.get('of')}: {payload.get('proposal_id')} "
             f"from team {payload.get('team')} ({payload.get('author')}), {tags}",
             "  knobs: " + (", ".join(f"{k}={v}" for k, v in (payload.get("knobs") or {}).items()) or "none")]
    for name in ("rationale", "prediction"):
        if payload.get(name):
            lines.append(f"  {name}: {payload[name]}")
    if payload.get("diff"):
        lines.append("  diff:")
        lines.extend(f"    {d}" for d in str(payload["diff"]).splitlines())
    lines.extend(f"  check: {c}" for c in payload.get("checks") or [])
    for r in payload.get("reviews") or []:
        lines.append(f"  review by {r['reviewer']}: {'approve' if r['approve'] else 'reject'}: {r['reason']}")
    if payload.get("error"):
        lines.append(f"  your last answer was refused: {payload['error']}")
    return lines


class TerminalApprover:
    """Shows each approval payload on ``console`` and reads the verdict from ``stdin``.

    ``pause()`` (a live display's) is held while it asks, so the prompt is not drawn over.
    End of input raises a one-line :class:`SettingsError` naming how to resume.
    """

    def __init__(self, console: Console, *, stdin: IO[str] | None = None, resume_hint: str = "",
                 pause: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.console = console
        self.stdin = stdin if stdin is not None else sys.stdin
        self.resume_hint = resume_hint
        self.pause = pause or nullcontext

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self.pause():
            for line in describe(payload):
                self.console.print(line, highlight=False, markup=False)
            for answer in self._lines():
                try:
                    return parse_answer(answer)
                except AutosciError as exc:  # a typo is asked again, not the end of the run
                    self.console.print(f"[autosci] {exc}", highlight=False, markup=False)
        raise SettingsError(f"no verdict for {payload.get('proposal_id')}: stdin ended; the run waits at its checkpoint"
                            + (f" (autosci run --resume {self.resume_hint})" if self.resume_hint else ""))

    def _lines(self) -> Iterator[str]:
        while True:
            self.console.print(PROMPT, end="", highlight=False, markup=False)
            self.console.file.flush()
            line = self.stdin.readline()
            if not line:
                self.console.print("")
                return
            if line.strip():
                yield line
