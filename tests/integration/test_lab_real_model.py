"""A small lab on a real model: llama.cpp's ``llama-server`` serving Qwen2.5-Coder-0.5B-Instruct on
127.0.0.1 (two threads), ``LLMScientist`` with bounded ``json_schema`` answers, end to end.

What a real model does that scripted answers do not: it is slow, partly wrong, copies values, and
ignores instructions. The lab must still work: organize, propose and critique get real answers;
what the model gets wrong is repaired or dropped, and counted; every experiment that ran came from
a proposal a critic other than its author approved; the tokens the lab counted are the tokens the
server reported, reply by reply. The binary and the weights come from ``tests/support/local_model``
(built and fetched once into a cache; the weights are used in tests only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.local_model import LlamaServer, llama_server_binary, model_file
from tests.support.real_lab import ROLES, experiments_from_model, role_figures, role_of, run_real_lab
from tests.support.recording_proxy import Exchange, RecordingProxy

pytestmark = [pytest.mark.integration, pytest.mark.real_model]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """One server for the session; built and fetched first on a cache miss. Two threads: the
    lab's experiments run in-process and take almost no CPU, so the model may have the machine
    (measured on 2 cores: the lab test took 298 s on one thread)."""
    server = LlamaServer(llama_server_binary(), model_file(), threads=min(2, os.cpu_count() or 1)).start()
    try:
        yield server
    finally:
        server.stop()


def test_server_fixture_serves_the_instruct_model_on_loopback(llama_server: LlamaServer) -> None:
    import json
    import urllib.request

    assert llama_server.base_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(llama_server.base_url + "/models", timeout=10) as r:
        models = json.load(r)
    meta = models["data"][0]["meta"]
    assert meta["n_embd"] == 896 and meta["n_ctx_train"] == 32768  # Qwen2.5-0.5B's shape


def test_a_small_lab_runs_end_to_end_on_the_real_model(llama_server: LlamaServer) -> None:
    with RecordingProxy(llama_server.base_url.removesuffix("/v1")) as proxy:
        # The token budget ends the run, so how far it gets does not depend on the machine's
        # speed. Revisions are paid from it too (a rejected proposal is revised only while the
        # budget covers the pass): measured, the run used 29,188 tokens in 24 calls, and its
        # first model proposal passed critique after four turns, so 24,000 left none to run.
        # The deadline is only a safety net.
        final = run_real_lab(proxy.base_url, max_experiments=6, deadline_s=900, max_tokens=36_000)
        exchanges = list(proxy.exchanges)
    assert llama_server.proc is not None and llama_server.proc.poll() is None, llama_server.log_tail()
    check_real_lab(final, exchanges)


def check_real_lab(final: dict[str, Any], exchanges: list[Exchange]) -> None:
    """What a lab run on the real model must show (also run on saved runs while debugging)."""
    # Every role got real answers from the server, bounded, and some of each were usable.
    figures = role_figures(final, exchanges)
    assert {role_of(x) for x in exchanges} == set(ROLES)
    assert all(x.status == 200 for x in exchanges), [x.response for x in exchanges if x.status != 200]
    assert all(x.request.get("max_completion_tokens", x.request.get("max_tokens", 10**9)) <= 256 and x.request["response_format"]["type"] == "json_schema" for x in exchanges)
    assert all(x.usage["completion_tokens"] <= 256 for x in exchanges)
    assert final["teams"], "organize formed no team from the model's hypotheses"
    assert all(f.valid >= 1 for f in figures.values()), figures

    # What it got wrong was repaired or dropped, and counted: one failed call per invalid answer.
    invalid = sum(f.answers - f.valid for f in figures.values())
    assert final["usage"]["failed_calls"] == invalid

    # Every experiment that ran came from a model proposal a critic other than its author approved.
    ran = experiments_from_model(final)
    assert ran, "no model proposal passed critique and ran"
    reviews = {r["proposal_id"]: r for r in final["reviews"]}
    for sub in ran:
        review = reviews[sub["proposal"]["proposal_id"]]
        assert review["approve"] and review["reviewer"] not in ("rules", "precheck", sub["proposal"]["author"])
        assert len(review["reason"].split()) >= 5
    assert {s["kind"] for s in final["submitted"]} <= {"baseline", "explore", "confirm", "noise"}
    assert all(s["proposal"]["author"].startswith("experimenter") for s in final["submitted"] if s["kind"] == "explore")

    # Tokens counted are the server's, reply by reply.
    usage = final["usage"]
    assert usage["calls"] == len(exchanges)
    assert usage["input_tokens"] == sum(x.usage["prompt_tokens"] for x in exchanges)
    assert usage["output_tokens"] == sum(x.usage["completion_tokens"] for x in exchanges)
