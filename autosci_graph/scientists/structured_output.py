"""How an answer's schema reaches a model, per provider: one table, easy to update.

Three methods, and ``"auto"`` to pick one from the provider:

* ``"prompt"``: the schema is in the prompt and the reply's first JSON object is read. Any chat model.
* ``"json_schema"``: the request also carries the bounded schema as ``response_format``; a server
  with grammars (vLLM, llama.cpp's ``llama-server``, LM Studio) only lets valid JSON through.
* ``"function_calling"``: the request carries one tool whose ``parameters`` is that same bounded
  schema, with ``tool_choice`` forcing it; the answer is the tool call's arguments. For providers
  that have tools but no usable ``response_format``. A reply in text instead is read like a
  ``"prompt"`` answer.

Validation and repair are the same for all three. ``"auto"`` looks the provider up in
:data:`METHODS` (the provider of a ``provider:model`` string, as
:func:`~autosci_graph.scientists.providers.split_model_string` names it, or of a model object, see
:func:`provider_of`); an unlisted provider gets ``"prompt"``, which works with every model::

    >>> pick("openai-compatible")
    'json_schema'
    >>> pick("huggingface")
    'prompt'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

#: A method a request is sent with.
Method = Literal["prompt", "json_schema", "function_calling"]
#: What a user may ask for: a method, or ``"auto"`` (from the provider, see :data:`METHODS`).
StructuredOutput = Literal["prompt", "json_schema", "function_calling", "auto"]
CHOICES: tuple[str, ...] = get_args(StructuredOutput)

#: Provider -> the method ``"auto"`` uses; providers not listed get ``"prompt"``. Keys are provider
#: names as ``split_model_string`` returns them (aliases resolved: ``vllm``, ``llamacpp`` and
#: ``lmstudio`` are ``openai-compatible``).
METHODS: dict[str, Method] = {
    # Servers that turn the schema into a grammar: vLLM, llama.cpp's server, LM Studio, Ollama's /v1.
    "openai-compatible": "json_schema",
    # The response_format sent is strict, and OpenAI's strict mode wants every property required and
    # additionalProperties false on every object; the answer schemas have optional fields
    # (``ranking``, ``bold``, ...), so OpenAI would refuse them. A (non-strict) forced tool takes
    # the same schema as it is.
    "openai": "function_calling",
    "azure_openai": "function_calling",
    # Tools with a forced choice, and no response_format that LangChain passes through.
    "anthropic": "function_calling",
    "google_genai": "function_calling",
    "google_vertexai": "function_calling",
    "bedrock_converse": "function_calling",
    "mistralai": "function_calling",
    "groq": "function_calling",
    "deepseek": "function_calling",
    "fireworks": "function_calling",
    "together": "function_calling",
    "xai": "function_calling",
    # Ollama's native API refuses tools for models without them (HTTP 400) and ignores tool_choice;
    # "function_calling" is there for models that have tools, the /v1 endpoint for json_schema.
    "ollama": "prompt",
}

#: LangChain's ``ls_provider`` of a model object -> the provider name :data:`METHODS` uses.
_LS_PROVIDERS = {"azure": "azure_openai", "mistral": "mistralai"}
_OPENAI_HOST = "api.openai.com"


def check(structured_output: str) -> StructuredOutput:
    """``structured_output`` if it is a known choice; a one-line ``ValueError`` naming them otherwise."""
    if structured_output not in CHOICES:
        raise ValueError(f"structured_output must be one of {', '.join(map(repr, CHOICES))}, got {structured_output!r}")
    return structured_output  # type: ignore[return-value]


def pick(provider: str) -> Method:
    """The method ``"auto"`` uses for ``provider`` (a name as ``split_model_string`` returns it)."""
    return METHODS.get(provider, "prompt")


def provider_of(model: BaseChatModel) -> str:
    """The provider of a model object, in :data:`METHODS`' names: LangChain's ``ls_provider``, and
    ``openai-compatible`` for an OpenAI client pointed at another server (vLLM, llama.cpp, ...)."""
    try:
        provider = str(model._get_ls_params().get("ls_provider") or "")
    except Exception:  # a custom model whose tracing parameters need more than defaults
        return ""
    provider = _LS_PROVIDERS.get(provider, provider)
    base_url = getattr(model, "openai_api_base", None)
    if provider == "openai" and isinstance(base_url, str) and urlsplit(base_url).hostname not in (None, _OPENAI_HOST):
        return "openai-compatible"
    return provider


def has_tools(model: BaseChatModel) -> bool:
    """Whether the model's class implements ``bind_tools`` (``BaseChatModel``'s own raises)."""
    from langchain_core.language_models import BaseChatModel

    return type(model).bind_tools is not BaseChatModel.bind_tools
