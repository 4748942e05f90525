"""Nodes that ask a scientist, written once for both ``invoke`` and ``ainvoke``.

Under ``ainvoke`` LangGraph runs a sync node in a worker thread, so a sync node would always call
the scientist's sync method. A node that asks a scientist is therefore written as *steps*: a
generator that yields what it waits for (an :class:`Act` of a scientist, a :class:`Pause`) and
receives the answer, or the exception, back. :func:`drive` runs the steps with the sync methods;
:func:`adrive` awaits the async ones (``apropose``...) and runs the node's own work between two
acts in a worker thread (memory recall and code checks block; the event loop must not). The
node's decisions are the same code on both paths, so both reach the same state.

:func:`both` makes the graph node: a ``RunnableLambda`` with the sync body for ``invoke``/``stream``
and the async body for ``ainvoke``/``astream``.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from langchain_core.runnables import RunnableLambda
from langgraph.runtime import Runtime, get_runtime

T = TypeVar("T")


@dataclass(frozen=True)
class Act:
    """One scientist call a node waits for: ``who.<act>(**kwargs)``, or ``await who.a<act>(**kwargs)``."""

    who: Any
    act: Literal["organize", "propose", "critique"]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pause:
    """A wait before the next try (``time.sleep``, or ``asyncio.sleep`` on the async path)."""

    seconds: float


@dataclass(frozen=True)
class Together:
    """Independent scientist calls made at once (the critiques of one turn's proposals): the
    node receives each call's answer, or the exception it raised, in the order of ``acts``."""

    acts: tuple[Act, ...]


Steps = Generator["Act | Pause | Together", Any, T]


def drive(steps: Steps[T]) -> T:
    """Run ``steps`` to their end with the scientists' sync methods."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            want = steps.throw(error) if error is not None else steps.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            if isinstance(want, Pause):
                time.sleep(want.seconds)
            elif isinstance(want, Together):
                value = _together(want)
            else:
                value = _call(want)
        except Exception as exc:  # handed to the node, which decides (a ProviderError is a failed turn)
            error = exc


async def adrive(steps: Steps[T]) -> T:
    """Run ``steps`` to their end, awaiting the scientists' async methods; the node's own work
    between two acts runs in a worker thread."""
    value: Any = None
    error: BaseException | None = None
    while True:
        done, want = await asyncio.to_thread(_advance, steps, value, error)
        if done:
            return want  # type: ignore[no-any-return]
        value, error = None, None
        try:
            if isinstance(want, Pause):
                await asyncio.sleep(want.seconds)
            elif isinstance(want, Together):
                value = await asyncio.gather(*(getattr(a.who, f"a{a.act}")(**a.kwargs) for a in want.acts),
                                             return_exceptions=True)
            else:
                value = await getattr(want.who, f"a{want.act}")(**want.kwargs)
        except Exception as exc:
            error = exc


def _together(want: Together) -> list[Any]:
    """The sync calls of ``want`` on a thread each; each answer, or the exception it raised."""
    if len(want.acts) <= 1:
        return [_outcome(a) for a in want.acts]
    with ThreadPoolExecutor(max_workers=len(want.acts), thread_name_prefix="together") as pool:
        return list(pool.map(_outcome, want.acts))


def _call(act: Act) -> Any:
    return getattr(act.who, act.act)(**act.kwargs)


def _outcome(act: Act) -> Any:
    try:
        return _call(act)
    except Exception as exc:  # handed to the node with the others' answers
        return exc


def _advance(steps: Steps[T], value: Any, error: BaseException | None) -> tuple[bool, Any]:
    """The steps' next want, or their result (a StopIteration cannot cross a Future)."""
    try:
        return False, steps.throw(error) if error is not None else steps.send(value)
    except StopIteration as stop:
        return True, stop.value


def both(func: Callable[[Any, Runtime[Any]], T], afunc: Callable[[Any, Runtime[Any]], Awaitable[T]]) -> RunnableLambda:
    """A graph node with a sync body (``invoke``, ``stream``) and an async one (``ainvoke``,
    ``astream``), each ``(state, runtime) -> update``."""

    def run(state: Any) -> T:
        return func(state, get_runtime())

    async def arun(state: Any) -> T:
        return await afunc(state, get_runtime())

    return RunnableLambda(run, afunc=arun, name=func.__name__)


__all__ = ["Act", "Pause", "adrive", "both", "drive"]
