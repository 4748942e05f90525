"""ScriptedChatModel: a LangChain chat model that answers from a script, for fast unit tests.

Unlike langchain-core's fake chat models it reports ``usage_metadata`` and records every call's
messages, so token accounting and prompt contents can be asserted without any server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr


class ScriptedChatModel(BaseChatModel):
    """Returns ``responses`` in order (or ``responder(messages)``); raises when the script runs out."""

    responses: list[str] = []
    responder: Callable[[list[BaseMessage]], str] | None = None
    input_tokens: int = 13
    output_tokens: int = 5
    model_name: str = "scripted"

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _next: int = PrivateAttr(default=0)
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """The messages of every call, in order."""
        with self._lock:
            return list(self._calls)

    def prompt_texts(self) -> list[str]:
        """Each call's messages joined into one text."""
        return ["\n".join(m.text for m in call) for call in self.calls]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: Sequence[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._calls.append(list(messages))
            if self.responder is not None:
                content = self.responder(list(messages))
            elif self._next < len(self.responses):
                content = self.responses[self._next]
                self._next += 1
            else:
                raise RuntimeError("ScriptedChatModel: no scripted response left")
        usage = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        message = AIMessage(content=content, usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])
