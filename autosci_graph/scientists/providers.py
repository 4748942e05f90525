"""Turn a ``provider:model`` string into a LangChain chat model.

Built in: ``openai`` (langchain-openai), ``anthropic`` (langchain-anthropic), ``ollama``
(langchain-ollama), and ``openai-compatible`` for any server speaking OpenAI's chat-completions API
(vLLM, llama.cpp's server, LM Studio, Ollama's ``/v1`` endpoint) given a ``base_url``. Other
LangChain providers (``groq``, ``mistralai``, ``google_genai``, ...) go through LangChain's own
``init_chat_model`` when the ``langchain`` package is installed. We do not depend on ``langchain``
for the four providers this project documents: its ``init_chat_model`` is a dispatch table we can
express in a few lines, and the meta package would add a dependency for it.

Secrets are read from the environment here, at the edge, handed to the model as ``SecretStr``, and
never logged. A missing integration package raises
:class:`~autosci_graph.errors.AutosciError` with code ``PROVIDER_MISSING`` and the exact
``pip install`` command::

    model = resolve_model("openai:gpt-4o-mini")
    local = resolve_model("openai-compatible:qwen2.5-7b", base_url="http://127.0.0.1:8000/v1")
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from autosci_graph.errors import AutosciError, ErrorCode, SettingsError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger(__name__)

#: API key sent to OpenAI-compatible servers that need none (the client insists on having one).
DUMMY_API_KEY = "not-needed"


class ProviderError(AutosciError):
    """A model provider failed as a system: unreachable server, refused credentials, bad settings.

    A *malformed answer* is never this; it is repaired or dropped and recorded in the reply.
    """

    code = ErrorCode.PROVIDER_ERROR
    #: Usage of the calls made for the failed request before it failed (set by LLMScientist), so a
    #: caller can still count them against the budget.
    usage: Any = None


@dataclass(frozen=True)
class _Provider:
    module: str
    cls: str
    package: str
    #: Environment variable holding the API key (``None``: the provider needs none).
    key_env: str | None
    #: Name of the constructor argument for the server address.
    url_arg: str = "base_url"
    #: Name of the constructor argument for a per-request time-out in seconds (``None``: none).
    timeout_arg: str | None = "timeout"
    #: Name of the constructor argument bounding an answer's tokens.
    max_tokens_arg: str = "max_tokens"


_PROVIDERS: dict[str, _Provider] = {
    "openai": _Provider("langchain_openai", "ChatOpenAI", "langchain-openai", "OPENAI_API_KEY"),
    "anthropic": _Provider("langchain_anthropic", "ChatAnthropic", "langchain-anthropic", "ANTHROPIC_API_KEY"),
    # ChatOllama takes no time-out argument; LLMScientist's call_timeout_s still bounds its calls.
    "ollama": _Provider("langchain_ollama", "ChatOllama", "langchain-ollama", None, timeout_arg=None,
                        max_tokens_arg="num_predict"),
    "openai-compatible": _Provider("langchain_openai", "ChatOpenAI", "langchain-openai", None),
}
_ALIASES = {
    "openai_compatible": "openai-compatible", "vllm": "openai-compatible", "llamacpp": "openai-compatible",
    "llama.cpp": "openai-compatible", "llama-cpp": "openai-compatible", "lmstudio": "openai-compatible",
    "lm-studio": "openai-compatible",
}
#: Integration packages of the providers LangChain's ``init_chat_model`` knows (for install hints).
_INIT_CHAT_MODEL_PACKAGES = {
    "azure_openai": "langchain-openai", "google_vertexai": "langchain-google-vertexai",
    "google_genai": "langchain-google-genai", "bedrock": "langchain-aws", "bedrock_converse": "langchain-aws",
    "cohere": "langchain-cohere", "fireworks": "langchain-fireworks", "together": "langchain-together",
    "mistralai": "langchain-mistralai", "huggingface": "langchain-huggingface", "groq": "langchain-groq",
    "deepseek": "langchain-deepseek", "xai": "langchain-xai", "perplexity": "langchain-perplexity",
}


def split_model_string(spec: str) -> tuple[str, str]:
    """``"ollama:llama3:8b"`` -> ``("ollama", "llama3:8b")``; the provider is lowercased and de-aliased."""
    provider, sep, name = spec.partition(":")
    if not sep or not provider.strip() or not name.strip():
        raise SettingsError(
            f"model {spec!r} must look like 'provider:model', e.g. 'openai:gpt-4o-mini', "
            "'anthropic:claude-sonnet-4-5', 'ollama:llama3.1' or 'openai-compatible:NAME' with a base URL"
        )
    provider = provider.strip().lower()
    return _ALIASES.get(provider, provider), name.strip()


def redact_url(url: str) -> str:
    """The URL without user:password, for logs."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _missing(provider: str, package: str, exc: ModuleNotFoundError) -> AutosciError:
    return AutosciError(
        f"provider {provider!r} needs the package {package!r}, which is not installed "
        f"(import of {exc.name!r} failed). Install it with: pip install {package}",
        code=ErrorCode.PROVIDER_MISSING,
    )


def _read_key(env_name: str, *, required: bool) -> SecretStr | None:
    value = os.environ.get(env_name)
    if value:
        return SecretStr(value)
    if required:
        raise SettingsError(f"environment variable {env_name} is not set; export it with your API key")
    return None


def resolve_model(
    spec: str, *, base_url: str | None = None, api_key_env: str | None = None, timeout_s: float | None = None,
    max_tokens: int | None = None, **kwargs: Any,
) -> BaseChatModel:
    """A chat model for ``spec`` (``provider:model``).

    Args:
        spec: ``openai:NAME``, ``anthropic:NAME``, ``ollama:NAME``, ``openai-compatible:NAME``
            (aliases ``vllm``, ``llamacpp``, ``lmstudio``), or any ``init_chat_model`` provider.
        base_url: Server address. Required for ``openai-compatible`` (else ``$OPENAI_BASE_URL``); for ``openai`` it points the
            OpenAI client elsewhere (a proxy, Azure-style gateway); for ``ollama`` the Ollama host.
        api_key_env: Environment variable to read the API key from, instead of the provider's
            default (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``). ``openai-compatible`` sends
            ``"not-needed"`` unless this is given, so a real OpenAI key never goes to a third-party server.
        timeout_s: Per-request time-out in seconds, for providers whose client takes one.
        max_tokens: Most tokens one answer may have (``num_predict`` for Ollama). Bound it for small
            local models: unbounded, they can loop inside a list until the context is full.
        **kwargs: Passed to the model class (``temperature``, ``max_retries``, ``max_tokens``, ...).

    Raises:
        AutosciError: ``PROVIDER_MISSING`` when the integration package is not installed.
        SettingsError: a malformed spec, an unknown provider, a missing base URL or API key.
    """
    provider, name = split_model_string(spec)
    if provider not in _PROVIDERS:
        return _via_init_chat_model(provider, name, base_url=base_url, api_key_env=api_key_env, **kwargs)
    info = _PROVIDERS[provider]
    try:
        cls = getattr(importlib.import_module(info.module), info.cls)
    except ModuleNotFoundError as exc:
        raise _missing(provider, info.package, exc) from None

    args: dict[str, Any] = {"model": name, **kwargs}
    if timeout_s is not None and info.timeout_arg is not None:
        args.setdefault(info.timeout_arg, timeout_s)
    if max_tokens is not None:
        args.setdefault(info.max_tokens_arg, max_tokens)
    if provider == "openai-compatible":
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise SettingsError(
                f"{spec!r} needs a base URL, e.g. base_url='http://127.0.0.1:8000/v1' "
                "(vLLM), 'http://127.0.0.1:8080/v1' (llama.cpp) or 'http://127.0.0.1:1234/v1' (LM Studio)"
            )
        key = _read_key(api_key_env, required=True) if api_key_env else SecretStr(DUMMY_API_KEY)
        args["api_key"] = key
    elif info.key_env is not None:
        key = _read_key(api_key_env or info.key_env, required=True)
        args["api_key"] = key
    if base_url:
        args[info.url_arg] = base_url
    try:
        model = cls(**args)
    except Exception as exc:  # the classes validate their settings at construction
        raise ProviderError(f"could not set up {provider} model {name!r}: {type(exc).__name__}: {exc}") from exc
    log.info("model %s:%s%s", provider, name, f" at {redact_url(base_url)}" if base_url else "")
    return model  # type: ignore[no-any-return]


def _via_init_chat_model(
    provider: str, name: str, *, base_url: str | None, api_key_env: str | None, **kwargs: Any
) -> BaseChatModel:
    package = _INIT_CHAT_MODEL_PACKAGES.get(provider)
    if package is None:
        known = ", ".join(sorted(_PROVIDERS) + sorted(_INIT_CHAT_MODEL_PACKAGES))
        raise SettingsError(f"unknown model provider {provider!r}; known providers: {known}")
    try:
        init_chat_model = importlib.import_module("langchain.chat_models").init_chat_model
    except ModuleNotFoundError as exc:
        raise AutosciError(
            f"provider {provider!r} is served through LangChain's init_chat_model, which is not installed "
            f"(import of {exc.name!r} failed). Install it with: pip install langchain {package}",
            code=ErrorCode.PROVIDER_MISSING,
        ) from None
    if base_url:
        kwargs["base_url"] = base_url
    if api_key_env:
        kwargs["api_key"] = _read_key(api_key_env, required=True)
    try:
        return init_chat_model(name, model_provider=provider, **kwargs)  # type: ignore[no-any-return]
    except ImportError as exc:
        raise AutosciError(
            f"provider {provider!r} needs the package {package!r}, which is not installed. "
            f"Install it with: pip install {package}",
            code=ErrorCode.PROVIDER_MISSING,
        ) from exc
