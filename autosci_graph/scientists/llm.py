"""LLMScientist: a scientist backed by any LangChain chat model.

How an answer becomes an action:

1. The role's prompt (:mod:`~autosci_graph.scientists.prompts`) carries the lab notebook, the role's
   inputs (team, recalled failures, the proposal under review) and the JSON schema of the answer.
2. The model is called with ``invoke`` (``ainvoke`` on the async hooks, ``aorganize``..., which
   the lab graph awaits under ``ainvoke``: many calls overlap on one event loop, no thread each).
   By default (``structured_output="prompt"``) that is all: no tool calling, no provider-specific
   structured-output mode, so the same code works with any chat model. ``"json_schema"`` also sends
   the bounded schema as ``response_format``, ``"function_calling"`` as the one tool the call must
   make, and ``"auto"`` picks one per provider
   (:mod:`~autosci_graph.scientists.structured_output`). The answer's JSON (the tool call's
   arguments, else the reply's first JSON object, fences and ``<think>`` blocks tolerated) is
   validated by the role's pydantic schema, then checked against the task and the lab state.
3. An invalid answer is sent back with the list of problems (bounded repair, ``max_repairs``
   rounds). Whatever is still invalid after that is dropped with a logged reason recorded in the
   reply's ``dropped``: a malformed answer is data, it never raises. A provider failure (server
   unreachable, credentials refused) raises :class:`~autosci_graph.scientists.providers.ProviderError`,
   whose ``usage`` holds what the calls made for that request had used.

Token usage comes from each reply's ``usage_metadata``; every reply carries the usage of its own
calls (the graph adds them up against the budget) and :attr:`LLMScientist.total_usage` holds the
running total. Instances are thread-safe: parallel team branches may call one scientist at once.

Example::

    scientist = LLMScientist("openai:gpt-4o-mini", critic_model="openai:gpt-4o-mini",
                             price_per_1k_input=0.00015, price_per_1k_output=0.0006)
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import BaseModel, ValidationError

from autosci_graph.errors import SettingsError
from autosci_graph.lab.critique import CritiqueRules
from autosci_graph.scientists import prompts
from autosci_graph.scientists._answers import (
    Checked,
    OrganizeAnswer,
    ProposeAnswer,
    ReviewAnswer,
    check_hypotheses,
    check_proposals,
    check_review,
)
from autosci_graph.scientists._schema import answer_tool, response_format
from autosci_graph.scientists._json import AnswerFormatError, extract_json_object, format_validation_error
from autosci_graph.scientists.base import (
    CritiqueReply,
    LabView,
    OrganizeReply,
    ProposeReply,
    RecalledMemory,
    Scientist,
)
from autosci_graph.scientists.providers import ProviderError, resolve_model, split_model_string
from autosci_graph.scientists.structured_output import Method, StructuredOutput, check, has_tools, pick, provider_of
from autosci_graph.state import Proposal, Team, Usage

log = logging.getLogger(__name__)


def model_name(model: BaseChatModel) -> str:
    """A readable name for a chat model (``gpt-4o-mini``, ``claude-...``), for logs and reports."""
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


class UsageMeter:
    """Thread-safe running total of LLM usage, priced per 1k tokens."""

    def __init__(self, price_per_1k_input: float | None = None, price_per_1k_output: float | None = None) -> None:
        self._lock = threading.Lock()
        self._in_price = price_per_1k_input or 0.0
        self._out_price = price_per_1k_output or 0.0
        self._total = Usage()

    def price(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens / 1000 * self._in_price + output_tokens / 1000 * self._out_price

    def record(self, message: AIMessage | None, *, failed: bool) -> Usage:
        """Count one call; ``message`` is ``None`` when the call raised. Returns that call's usage."""
        meta: dict[str, Any] = dict((message.usage_metadata if message is not None else None) or {})
        tokens_in, tokens_out = int(meta.get("input_tokens", 0) or 0), int(meta.get("output_tokens", 0) or 0)
        if message is not None and not meta:
            log.debug("model reply carries no usage_metadata; its tokens are not counted")
        call = Usage(
            input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=self.price(tokens_in, tokens_out),
            calls=1, failed_calls=int(failed),
        )
        with self._lock:
            self._total = add(self._total, call)
        return call

    @property
    def total(self) -> Usage:
        with self._lock:
            return self._total


def add(a: Usage, b: Usage) -> Usage:
    """The sum of two usages."""
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens, output_tokens=a.output_tokens + b.output_tokens,
        cost_usd=a.cost_usd + b.cost_usd, calls=a.calls + b.calls, failed_calls=a.failed_calls + b.failed_calls,
    )


class _Asked:
    """The result of one role's question after repair: usable items, usage, dropped reasons."""

    def __init__(self) -> None:
        self.checked: Checked | None = None
        self.usage = Usage()
        self.dropped: list[str] = []


class LLMScientist(Scientist):
    """A scientist that thinks with a LangChain chat model.

    Args:
        model: Any ``BaseChatModel``, or a ``provider:model`` string (see
            :func:`~autosci_graph.scientists.providers.resolve_model`). Used to propose.
        critic_model: Model for critiques (a cheaper one is fine); defaults to ``model``.
        organizer_model: Model for team organization; defaults to ``model``.
        max_repairs: Repair rounds after an invalid answer before the rest is dropped.
        price_per_1k_input: USD per 1000 input tokens, for the cost budget (``None``: free).
        price_per_1k_output: USD per 1000 output tokens.
        name: Name in logs and reports; defaults to ``llm:<model name>``.
        prompt_settings: How much of the notebook goes into each prompt.
        base_url: Server address for models given as strings (``openai-compatible:NAME``, a proxy).
        api_key_env: Environment variable holding the API key, for models given as strings.
        rules: Thresholds of the automatic critique rules; proposals they would reject are sent
            back for repair before they reach a critic.
        code_budget_chars: Characters of numbered code the proposer sees (about 4 per token); overrides
            ``prompt_settings.code_budget_chars``. Files that fit go in whole, longer ones as an
            outline plus the region the champion's change touched.
        structured_output: ``"prompt"``: the schema is in the prompt and the reply's first JSON object
            is read (any chat model). ``"json_schema"``: the request also carries the schema as
            ``response_format`` (vLLM, llama.cpp's server, LM Studio), bounded and with the task's
            own axis and knob names, so a server with grammars only lets valid JSON through.
            ``"function_calling"``: the request carries that same schema as the ``parameters`` of
            one tool, with ``tool_choice`` forcing it, and the answer is the call's arguments; a
            reply in text instead is read as with ``"prompt"``. A model without ``bind_tools``
            raises :class:`~autosci_graph.errors.SettingsError`.
            ``"auto"``: each of the three models gets the method its provider has in
            :data:`~autosci_graph.scientists.structured_output.METHODS` (``"prompt"`` when unlisted).
            Validation and repair are the same every way.
        step_menu: With ``"json_schema"`` or ``"function_calling"``, on a task without editable
            files, a numeric knob moves by one of four steps from the champion's (x2, x4, /2, /4 on
            a log scale, 10% or 20% of the range otherwise). For small models, which otherwise
            restate the champion's value.
        max_answer_tokens: Most tokens one answer may have, for models given as strings (a model
            object keeps its own ``max_tokens``).
        call_timeout_s: Seconds one model call may take (``None``: no limit). A call that takes longer
            raises :class:`~autosci_graph.scientists.providers.ProviderError`; in a lab that is a failed
            turn, retried in a later round, never the end of the run.

    Usage: each reply's ``usage`` holds the tokens and cost of the calls made for that reply;
    :attr:`total_usage` is the running total over the scientist's life.
    """

    def __init__(
        self,
        model: BaseChatModel | str,
        *,
        critic_model: BaseChatModel | str | None = None,
        organizer_model: BaseChatModel | str | None = None,
        max_repairs: int = 2,
        price_per_1k_input: float | None = None,
        price_per_1k_output: float | None = None,
        name: str | None = None,
        prompt_settings: prompts.PromptSettings | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        rules: CritiqueRules | None = None,
        code_budget_chars: int | None = None,
        call_timeout_s: float | None = 120.0,
        structured_output: StructuredOutput = "prompt",
        max_answer_tokens: int | None = None,
        step_menu: bool = False,
    ) -> None:
        if max_repairs < 0:
            raise ValueError(f"max_repairs must be >= 0, got {max_repairs}")
        if call_timeout_s is not None and call_timeout_s <= 0:
            raise ValueError(f"call_timeout_s must be > 0 (or None for no limit), got {call_timeout_s}")
        self.call_timeout_s = call_timeout_s
        self.structured_output = check(structured_output)
        self.step_menu = step_menu

        def as_model(m: BaseChatModel | str) -> BaseChatModel:
            return _as_model(m, base_url=base_url, api_key_env=api_key_env, timeout_s=call_timeout_s,
                             max_tokens=max_answer_tokens)

        self.model = as_model(model)
        self.critic_model = as_model(critic_model) if critic_model is not None else self.model
        self.organizer_model = as_model(organizer_model) if organizer_model is not None else self.model
        #: The method each role's requests are sent with (``"auto"`` resolved per model).
        self.methods: dict[str, Method] = {
            role: self._method(spec if spec is not None else model, m)
            for role, spec, m in (("propose", model, self.model), ("critique", critic_model, self.critic_model),
                                  ("organize", organizer_model, self.organizer_model))
        }
        self.max_repairs = max_repairs
        self.rules = rules or CritiqueRules()
        self.prompt_settings = prompt_settings or prompts.PromptSettings()
        if code_budget_chars is not None:
            self.prompt_settings = replace(self.prompt_settings, code_budget_chars=code_budget_chars)
        self.name = name or f"llm:{model_name(self.model)}"
        self._meter = UsageMeter(price_per_1k_input, price_per_1k_output)

    @property
    def total_usage(self) -> Usage:
        """Tokens, cost and calls over every call so far (thread-safe snapshot)."""
        return self._meter.total

    def _method(self, spec: BaseChatModel | str, model: BaseChatModel) -> Method:
        """The method for ``model``, given as ``spec``: a string names its provider, an object is asked."""
        if self.structured_output != "auto":
            if self.structured_output == "function_calling" and not has_tools(model):
                raise SettingsError(f"structured_output='function_calling' needs tool calling, which {type(model).__name__} "
                                    "lacks (no bind_tools); use 'prompt', or 'json_schema' for a server with grammars")
            return self.structured_output
        provider = split_model_string(spec)[0] if isinstance(spec, str) else provider_of(model)
        method = pick(provider)
        if method == "function_calling" and not has_tools(model):
            method = "prompt"
        log.info("structured output for %s (provider %r): %s", model_name(model), provider or "unknown", method)
        return method

    # ------------------------------------------------------------------ the three acts

    def organize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        """One organizer call posts hypotheses and ranks them.

        Authorship of the drafts is spread round-robin over ``agents``; each agent then votes for
        the best-ranked draft it did not write (the model's ranking, then its ``promise``).
        """
        return _organize_reply(self._ask(self._organize_question(view, n_teams, agents)))

    async def aorganize(self, view: LabView, *, n_teams: int, agents: list[str]) -> OrganizeReply:
        """:meth:`organize` on the model's ``ainvoke``."""
        return _organize_reply(await self._aask(self._organize_question(view, n_teams, agents)))

    def propose(
        self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2
    ) -> ProposeReply:
        """Up to ``n`` proposals for ``team``; ``recalled`` failures are shown in the prompt and
        a proposal repeating one without ``what_is_different`` is sent back for repair."""
        return _propose_reply(self._ask(self._propose_question(view, team, author, recalled, n)))

    async def apropose(
        self, view: LabView, *, team: Team, author: str, recalled: list[RecalledMemory], n: int = 2
    ) -> ProposeReply:
        """:meth:`propose` on the model's ``ainvoke``."""
        return _propose_reply(await self._aask(self._propose_question(view, team, author, recalled, n)))

    def critique(
        self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]
    ) -> CritiqueReply:
        """A review with a specific reason, or ``review=None`` (see ``dropped``) after failed repair."""
        return _critique_reply(self._ask(self._critique_question(view, proposal, reviewer, recalled)))

    async def acritique(
        self, view: LabView, *, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]
    ) -> CritiqueReply:
        """:meth:`critique` on the model's ``ainvoke``."""
        return _critique_reply(await self._aask(self._critique_question(view, proposal, reviewer, recalled)))

    def _organize_question(self, view: LabView, n_teams: int, agents: list[str]) -> _Question:
        agent = agents[0] if agents else "organizer"
        messages = prompts.organize_messages(view, n_teams=n_teams, agent=agent, settings=self.prompt_settings)
        return _Question("organize", self.organizer_model, messages, OrganizeAnswer,
                         lambda answer: check_hypotheses(answer, view, n_teams=n_teams, agents=agents),
                         *self._format("organize", OrganizeAnswer, view, n_teams + 1))

    def _propose_question(self, view: LabView, team: Team, author: str, recalled: list[RecalledMemory], n: int) -> _Question:
        messages = prompts.propose_messages(
            view, team=team, author=author, recalled=recalled, n=n, settings=self.prompt_settings
        )
        return _Question(
            "propose", self.model, messages, ProposeAnswer,
            lambda answer: check_proposals(
                answer, view, team=team.team_id, author=author, recalled=recalled, n=n, rules=self.rules
            ),
            *self._format("propose", ProposeAnswer, view, n),
        )

    def _critique_question(self, view: LabView, proposal: Proposal, reviewer: str, recalled: list[RecalledMemory]) -> _Question:
        if reviewer == proposal.author:
            raise ValueError(f"{reviewer} cannot review its own proposal {proposal.proposal_id}")
        messages = prompts.critique_messages(
            view, proposal=proposal, reviewer=reviewer, recalled=recalled, settings=self.prompt_settings
        )
        return _Question("critique", self.critic_model, messages, ReviewAnswer,
                         lambda answer: check_review(answer, view, proposal=proposal, recalled=recalled),
                         *self._format("critique", ReviewAnswer, view, None))

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model": model_name(self.model),
            "critic_model": model_name(self.critic_model),
            "organizer_model": model_name(self.organizer_model),
            "max_repairs": self.max_repairs,
            "usage": self.total_usage.to_state(),
        }

    # ------------------------------------------------------------------ ask, validate, repair

    def _format(self, role: str, schema: type[BaseModel], view: LabView,
                max_items: int | None) -> tuple[dict[str, Any] | None, Method]:
        """The bounded schema a role's request carries (``None`` for ``"prompt"``), and the method."""
        method = self.methods[role]
        if method == "prompt":
            return None, method
        return response_format(schema, view, name=schema.__name__, max_items=max_items, step_menu=self.step_menu), method

    def _ask(self, q: _Question) -> _Asked:
        asked = _Asked()
        conversation = list(q.messages)
        errors: list[str] = []
        for attempt in range(1, self._attempts + 1):
            try:
                reply = self._invoke(q.role, q.model, conversation, q.format, q.method)
            except ProviderError as exc:
                exc.usage = add(asked.usage, Usage(calls=1, failed_calls=1))
                raise
            text = self._answer_text(q, reply)
            errors = self._read(q, asked, reply, text, attempt)
            if not errors:
                return asked
            # The answer goes back as text, also a tool call's: no tool protocol to keep on any provider.
            conversation += [AIMessage(content=text), prompts.repair_message(errors)]
        return self._give_up(q, asked, errors)

    async def _aask(self, q: _Question) -> _Asked:
        """:meth:`_ask` with the model's ``ainvoke``: the same validation, repair and usage."""
        asked = _Asked()
        conversation = list(q.messages)
        errors: list[str] = []
        for attempt in range(1, self._attempts + 1):
            try:
                reply = await self._ainvoke(q.role, q.model, conversation, q.format, q.method)
            except ProviderError as exc:
                exc.usage = add(asked.usage, Usage(calls=1, failed_calls=1))
                raise
            text = self._answer_text(q, reply)
            errors = self._read(q, asked, reply, text, attempt)
            if not errors:
                return asked
            # The answer goes back as text, also a tool call's: no tool protocol to keep on any provider.
            conversation += [AIMessage(content=text), prompts.repair_message(errors)]
        return self._give_up(q, asked, errors)

    @property
    def _attempts(self) -> int:
        return 1 + self.max_repairs

    def _answer_text(self, q: _Question, reply: AIMessage) -> str:
        """The answer's JSON: with ``"function_calling"``, the tool call's arguments (as they came,
        when they were not JSON), else the reply's text, which is all there is for the other methods
        and for a provider that answered in text instead of calling the tool."""
        if q.method == "function_calling":
            if reply.tool_calls:
                return json.dumps(reply.tool_calls[0]["args"])
            if reply.invalid_tool_calls:
                return str(reply.invalid_tool_calls[0].get("args") or "")
            log.info("%s %s: the answer is text, not a tool call; reading the text", self.name, q.role)
        return reply.text

    def _read(self, q: _Question, asked: _Asked, reply: AIMessage, text: str, attempt: int) -> list[str]:
        """Validate one answer (``text``, see :meth:`_answer_text`) into ``asked``, count its call;
        the problems left (none: done)."""
        errors: list[str] = []
        try:
            answer = q.schema.model_validate(extract_json_object(text))
        except AnswerFormatError as exc:
            errors = [str(exc)]
        except ValidationError as exc:
            errors = [f"the JSON does not match the schema: {format_validation_error(exc)}"]
        else:
            checked = q.check(answer)
            errors = checked.errors
            if checked.items or asked.checked is None:
                asked.checked = checked
        asked.usage = add(asked.usage, self._meter.record(reply, failed=bool(errors)))
        if errors:
            log.info("%s %s: answer %d/%d invalid: %s", self.name, q.role, attempt, self._attempts, "; ".join(errors))
        return errors

    def _give_up(self, q: _Question, asked: _Asked, errors: list[str]) -> _Asked:
        kept = len(asked.checked.items) if asked.checked else 0
        problems = asked.checked.errors if asked.checked and kept else errors
        reason = f"{q.role}: still invalid after {self._attempts} attempts ({'; '.join(problems)}); kept {kept} valid item(s)"
        asked.dropped.append(reason)
        log.warning("%s %s", self.name, reason)
        return asked

    def _invoke(self, role: str, model: BaseChatModel, conversation: list[BaseMessage],
                format: dict[str, Any] | None = None, method: Method = "prompt") -> AIMessage:
        runnable, config = self._runnable(role, model, format, method)
        try:
            reply = _call_with_timeout(lambda: runnable.invoke(conversation, config=config), self.call_timeout_s)
        except Exception as exc:  # any failure of the provider itself is a failed system
            raise self._failed(role, model, exc) from exc
        return _as_message(reply)

    async def _ainvoke(self, role: str, model: BaseChatModel, conversation: list[BaseMessage],
                       format: dict[str, Any] | None = None, method: Method = "prompt") -> AIMessage:
        runnable, config = self._runnable(role, model, format, method)
        try:
            # No thread: the call is awaited on the event loop, and given up after call_timeout_s.
            reply = await asyncio.wait_for(runnable.ainvoke(conversation, config=config), self.call_timeout_s)
        except asyncio.TimeoutError:
            raise self._failed(role, model, CallTimeout(f"no answer within {self.call_timeout_s:g} s (call_timeout_s)")) from None
        except Exception as exc:
            raise self._failed(role, model, exc) from exc
        return _as_message(reply)

    def _runnable(self, role: str, model: BaseChatModel, format: dict[str, Any] | None,
                  method: Method) -> tuple[Any, dict[str, Any]]:
        config = {"run_name": f"autosci.{role}", "tags": ["autosci", role], "metadata": {"scientist": self.name}}
        if format is None:
            return model, config
        if method == "function_calling":
            # "any": call a tool, and there is one. LangChain sends each provider its form of it
            # ("required" for OpenAI's API); llama.cpp's server ignores a tool named in tool_choice.
            return model.bind_tools([answer_tool(format)], tool_choice="any"), config
        return model.bind(response_format=format), config

    def _failed(self, role: str, model: BaseChatModel, exc: BaseException) -> ProviderError:
        self._meter.record(None, failed=True)
        return ProviderError(
            f"{role}: the model {model_name(model)!r} could not be called ({type(exc).__name__}: {exc}); "
            "check that its server is running and reachable, the model name and the API key"
        )


@dataclass(frozen=True)
class _Question:
    """One role's question: who answers, the prompt, the answer's schema and its checks."""

    role: str
    model: BaseChatModel
    messages: list[BaseMessage]
    schema: type[BaseModel]
    check: Callable[[Any], Checked]
    #: The bounded schema (a ``response_format`` payload; ``None`` with ``"prompt"``) and how it is sent.
    format: dict[str, Any] | None = None
    method: Method = "prompt"


def _organize_reply(asked: _Asked) -> OrganizeReply:
    hypotheses = asked.checked.items if asked.checked else []
    votes = asked.checked.votes if asked.checked else []
    return OrganizeReply(hypotheses=hypotheses, votes=votes, usage=asked.usage, dropped=asked.dropped)


def _propose_reply(asked: _Asked) -> ProposeReply:
    return ProposeReply(proposals=asked.checked.items if asked.checked else [], usage=asked.usage, dropped=asked.dropped)


def _critique_reply(asked: _Asked) -> CritiqueReply:
    review = asked.checked.items[0] if asked.checked and asked.checked.items else None
    return CritiqueReply(review=review, usage=asked.usage, dropped=asked.dropped)


def _as_message(reply: Any) -> AIMessage:
    return reply if isinstance(reply, AIMessage) else AIMessage(content=str(getattr(reply, "content", reply)))


class CallTimeout(TimeoutError):
    """A model call gave no answer within ``call_timeout_s``."""


def _call_with_timeout(call: Callable[[], Any], timeout_s: float | None) -> Any:
    """``call()``, given up after ``timeout_s`` seconds. The client's own time-out (set on models
    built from strings) closes the connection; this guard also holds for any model object, whose
    client may wait forever. An abandoned call finishes in a daemon thread and is ignored."""
    if timeout_s is None:
        return call()
    box: dict[str, Any] = {}
    context = contextvars.copy_context()  # callbacks and tracing see the caller's run

    def target() -> None:
        try:
            box["value"] = context.run(call)
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, name="autosci-llm-call", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise CallTimeout(f"no answer within {timeout_s:g} s (call_timeout_s)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _as_model(model: BaseChatModel | str, *, base_url: str | None, api_key_env: str | None,
              timeout_s: float | None = None, max_tokens: int | None = None) -> BaseChatModel:
    if isinstance(model, str):
        return resolve_model(model, base_url=base_url, api_key_env=api_key_env, timeout_s=timeout_s, max_tokens=max_tokens)
    if not isinstance(model, BaseChatModel):
        raise TypeError(f"model must be a LangChain BaseChatModel or a 'provider:model' string, got {type(model).__name__}")
    return model
