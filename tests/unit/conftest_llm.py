"""Fixtures for LLM scientist tests (import them into a test module: ``from conftest_llm import ...``).

pytest puts this folder on ``sys.path`` (rootdir-less ``prepend`` import mode) but not the repository
root, so the root is added here once to import the shared ``tests.support`` helpers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.support import OpenAICompatServer  # noqa: E402
from tests.support.lab import make_recalled, make_task, make_view  # noqa: E402


@pytest.fixture
def openai_server() -> Iterator[OpenAICompatServer]:
    """A started, empty local OpenAI-compatible server; push answers with ``server.push(...)``."""
    with OpenAICompatServer() as server:
        yield server


@pytest.fixture
def lab_view():  # type: ignore[no-untyped-def]
    return make_view(make_task())


@pytest.fixture
def recalled():  # type: ignore[no-untyped-def]
    return make_recalled()
