"""Pull one JSON object out of a chat model's answer, and say precisely what is wrong when it fails.

Models wrap JSON in prose, in ```json fences, or behind a ``<think>`` block (reasoning models served
by vLLM or llama.cpp). We accept all of these and take the first JSON *object* we can decode. Every
error message here is written to be sent back to the model as a repair instruction.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class AnswerFormatError(ValueError):
    """The answer holds no decodable JSON object. The message is a repair instruction."""


def extract_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (fenced blocks first, then anywhere in the text).

    Raises :class:`AnswerFormatError` when there is none.
    """
    cleaned = _THINK.sub("", text or "").strip()
    if not cleaned:
        raise AnswerFormatError("the answer was empty; reply with one JSON object only")
    candidates = [m.group(1) for m in _FENCE.finditer(cleaned)] + [cleaned]
    decoder = json.JSONDecoder()
    first_error: str | None = None
    for candidate in candidates:
        for match in re.finditer(r"\{", candidate):
            try:
                value, _ = decoder.raw_decode(candidate, match.start())
            except json.JSONDecodeError as exc:
                first_error = first_error or f"{exc.msg} at line {exc.lineno} column {exc.colno}"
                continue
            if isinstance(value, dict):
                return value
    if first_error is not None:
        raise AnswerFormatError(f"the answer is not valid JSON ({first_error}); reply with one JSON object only")
    raise AnswerFormatError("no JSON object found in the answer; reply with one JSON object only, no prose")


def format_validation_error(exc: ValidationError, *, limit: int = 8) -> str:
    """A compact, model-readable list of schema violations: ``path: message (got value)``."""
    parts: list[str] = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {json.dumps(got, default=str)[:80]})"
        parts.append(f"{loc}: {msg}{shown}")
    extra = len(exc.errors()) - limit
    if extra > 0:
        parts.append(f"... and {extra} more")
    return "; ".join(parts)
