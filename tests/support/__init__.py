"""Test helpers shared by unit and integration tests: a local OpenAI-compatible server, a scripted
chat model, and small lab-state builders for scientist tests."""

from tests.support.openai_server import OpenAICompatServer, ScriptedReply
from tests.support.scripted import ScriptedChatModel

__all__ = ["OpenAICompatServer", "ScriptedChatModel", "ScriptedReply"]
