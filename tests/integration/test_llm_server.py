"""The LLM path end to end: LLMScientist -> ChatOpenAI -> a local OpenAI-compatible server.

The server (tests/support/openai_server.py) runs on 127.0.0.1 and records every request, so these
tests check what really went over the wire: the prompts, the repair rounds, the usage numbers.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # pytest puts this folder on sys.path, not the repository root
    sys.path.insert(0, _ROOT)

from langchain_openai import ChatOpenAI  # noqa: E402

from autosci_graph.scientists.llm import LLMScientist  # noqa: E402
from autosci_graph.scientists.providers import ProviderError, resolve_model  # noqa: E402
from tests.support import OpenAICompatServer, ScriptedReply  # noqa: E402
from tests.support.lab import make_proposal, make_recalled, make_team, make_view  # noqa: E402

pytestmark = pytest.mark.integration

LR_UP = {"axis": "lr", "direction": "increase", "knobs": {"lr": 0.008}, "bold": True,
         "rationale": "lr increase gave the only keep so far", "prediction": "val_bpb -0.03"}
ACT = {"axis": "activation", "direction": "set", "knobs": {"activation": "gelu"},
       "rationale": "activation is untested; gelu is smoother", "prediction": "val_bpb -0.01"}
GOOD = "```json\n" + json.dumps({"proposals": [LR_UP, ACT]}) + "\n```"
REVIEW = json.dumps({"approve": False, "reason": "n_layer 6 diverged in e-old-7; this repeats it without a change"})


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    with OpenAICompatServer(prompt_tokens=120, completion_tokens=40) as s:
        yield s


def chat(server: OpenAICompatServer, **kwargs) -> ChatOpenAI:  # type: ignore[no-untyped-def]
    return ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0, **kwargs)


def test_propose_repairs_over_the_wire_and_counts_the_servers_usage(server: OpenAICompatServer) -> None:
    server.push(
        "I think we should raise the learning rate a bit.",  # prose, not an action
        json.dumps({"proposals": [{**LR_UP, "knobs": {"lr": 0.5}}, ACT]}),  # out of bounds
        GOOD,
    )
    sci = LLMScientist(chat(server), price_per_1k_input=1.0, price_per_1k_output=2.0)
    reply = sci.propose(make_view(), team=make_team(), author="exp-1", recalled=make_recalled())

    assert [(p.axis, p.knobs) for p in reply.proposals] == [("lr", {"lr": 0.008}), ("activation", {"activation": "gelu"})]
    assert reply.dropped == []
    prompts = server.prompts()
    assert len(prompts) == 3
    assert "e-old-7" in prompts[0] and "n_layer 6 diverged" in prompts[0]  # recalled failure in the prompt
    assert "no JSON object" in prompts[1]
    assert "lr=0.5" in prompts[2] and "[0.0001, 0.03]" in prompts[2]
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (server.served_prompt_tokens, server.served_completion_tokens) == (360, 120)
    assert (reply.usage.calls, reply.usage.failed_calls) == (3, 2)
    assert reply.usage.cost_usd == pytest.approx(0.36 * 1.0 + 0.12 * 2.0)


def test_answers_malformed_after_max_repairs_are_dropped(server: OpenAICompatServer) -> None:
    server.push("{", "still not json", '{"proposals": "none"}')
    reply = LLMScientist(chat(server), max_repairs=2).propose(
        make_view(), team=make_team(), author="exp-1", recalled=[]
    )
    assert reply.proposals == [] and len(reply.dropped) == 1
    assert len(server.requests) == 3


def test_critique_over_the_wire_gives_a_reason_from_a_cheaper_critic(server: OpenAICompatServer) -> None:
    server.push(REVIEW)
    critic = ChatOpenAI(model="cheap-critic", base_url=server.base_url, api_key="x", max_retries=0)
    sci = LLMScientist(chat(server), critic_model=critic)
    proposal = make_proposal(axis="n_layer", knobs={"n_layer": 6})
    reply = sci.critique(make_view(), proposal=proposal, reviewer="ana-2", recalled=make_recalled())
    assert reply.review is not None and not reply.review.approve and "e-old-7" in reply.review.reason
    assert server.requests[0]["model"] == "cheap-critic"
    assert "e-old-7" in server.prompts()[0]


def test_provider_string_through_the_python_api(server: OpenAICompatServer) -> None:
    server.push(GOOD)
    sci = LLMScientist("openai-compatible:test-model", base_url=server.base_url)
    reply = sci.propose(make_view(), team=make_team(), author="exp-1", recalled=[])
    assert len(reply.proposals) == 2
    assert server.requests[0]["model"] == "test-model"


def test_streaming_client_counts_usage_too(server: OpenAICompatServer) -> None:
    server.push(GOOD)
    sci = LLMScientist(chat(server, streaming=True, stream_usage=True))
    reply = sci.propose(make_view(), team=make_team(), author="exp-1", recalled=[])
    assert len(reply.proposals) == 2
    assert server.requests[0]["stream"] is True
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (120, 40)


def test_parallel_branches_share_one_scientist(server: OpenAICompatServer) -> None:
    srv = OpenAICompatServer(lambda body: GOOD if "Propose" in body["messages"][-1]["content"] else REVIEW)
    with srv:
        sci = LLMScientist(chat(srv))
        view, team = make_view(), make_team()
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda i: sci.propose(view, team=team, author=f"exp-{i}", recalled=[]), range(8)))
        assert all(len(r.proposals) == 2 for r in replies)
        assert sci.total_usage.calls == len(srv.requests) == 8
        assert sci.total_usage.input_tokens == srv.served_prompt_tokens


def test_the_async_hooks_overlap_their_requests_on_one_event_loop() -> None:
    """apropose and acritique awaited together: both requests are in flight at the server at once
    (a barrier lets neither through alone), and no call runs in a thread of its own."""
    barrier = threading.Barrier(2, timeout=60)
    threads: list[list[str]] = []

    def both_in_flight() -> None:
        barrier.wait()  # raises BrokenBarrierError (the request fails) if the client sent them one by one
        threads.append([t.name for t in threading.enumerate()])

    srv = OpenAICompatServer(lambda body: GOOD if "Propose" in body["messages"][-1]["content"] else REVIEW)
    srv.hold = both_in_flight
    with srv:
        sci = LLMScientist(chat(srv), call_timeout_s=120)
        view, team = make_view(), make_team()

        async def main() -> tuple:  # type: ignore[type-arg]
            return await asyncio.gather(
                sci.apropose(view, team=team, author="exp-1", recalled=[]),
                sci.acritique(view, proposal=make_proposal(axis="n_layer", knobs={"n_layer": 6}), reviewer="ana-2",
                              recalled=make_recalled()))

        proposed, reviewed = asyncio.run(main())
    assert srv.max_in_flight == 2 and len(srv.requests) == 2
    assert len(proposed.proposals) == 2 and reviewed.review is not None and not reviewed.review.approve
    assert threads and not any("autosci-llm-call" in name for names in threads for name in names)
    assert sci.total_usage.calls == 2 and sci.total_usage.input_tokens == srv.served_prompt_tokens


def test_an_async_call_past_its_time_out_is_a_provider_error(server: OpenAICompatServer) -> None:
    server.push(ScriptedReply(content=GOOD, delay_s=3.0))
    sci = LLMScientist(chat(server), call_timeout_s=0.2)
    with pytest.raises(ProviderError, match="CallTimeout"):
        asyncio.run(sci.apropose(make_view(), team=make_team(), author="exp-1", recalled=[]))
    assert sci.total_usage.failed_calls == 1


def test_server_errors_and_unreachable_servers_raise_a_project_error(server: OpenAICompatServer) -> None:
    server.push(ScriptedReply(content="model overloaded", status=500))
    with pytest.raises(ProviderError, match="could not be called"):
        LLMScientist(chat(server)).propose(make_view(), team=make_team(), author="exp-1", recalled=[])
    url = server.base_url
    server.stop()
    dead = resolve_model("openai-compatible:test-model", base_url=url, max_retries=0, timeout=5)
    with pytest.raises(ProviderError, match="server is running"):
        LLMScientist(dead).critique(make_view(), proposal=make_proposal(), reviewer="ana-2", recalled=[])
