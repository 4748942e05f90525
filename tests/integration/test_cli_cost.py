"""Cost budgets from the CLI: ``--max-cost`` at ``--price-in`` / ``--price-out`` stops a run at its
budget, counted from the usage a local OpenAI-compatible server reports; a cost budget nothing could
count (no model, or a model with no known price) is refused with a message, never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autosci_graph.runner import load_state
from tests.integration.test_cli_provider import TASK, Agents, _autosci
from tests.support.openai_server import OpenAICompatServer

pytestmark = pytest.mark.integration

PROMPT_TOKENS, COMPLETION_TOKENS = 400, 100
PRICE_IN, PRICE_OUT = 0.5, 1.0  # USD per 1k tokens: 0.2 + 0.1 = 0.30 USD per call
MAX_COST = 6.0  # 20 calls: the first round (teams drafting while the baseline runs) leaves turns to spend


def test_max_cost_stops_the_run_at_its_budget(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with OpenAICompatServer(Agents(), prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS) as server:
        proc = _autosci("run", str(TASK), "--model", "openai-compatible:test-model", "--base-url", server.base_url,
                        "--teams", "2", "--slots", "2", "--max-experiments", "40", "--stop-after-no-keep", "0",
                        "--max-cost", str(MAX_COST), "--price-in", str(PRICE_IN), "--price-out", str(PRICE_OUT),
                        "--no-memory", "--run-dir", str(run_dir))
        served = len(server.requests)
        served_in, served_out = server.served_prompt_tokens, server.served_completion_tokens
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stop: LLM token/cost budget spent" in proc.stdout

    _, state = load_state(run_dir)
    usage = state["usage"]
    # The cost is the server's usage at the given prices, and the budget was never exceeded.
    expected = served_in / 1000 * PRICE_IN + served_out / 1000 * PRICE_OUT
    assert usage["calls"] == served and usage["cost_usd"] == pytest.approx(expected)
    assert usage["cost_usd"] <= MAX_COST
    # It stopped because of the cost: well before the experiment budget, and within a turn of the limit.
    assert 3 < len(state["log"]) < 40
    assert usage["cost_usd"] > MAX_COST - 6 * 0.30 - 1e-9
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["price_in"], run["price_out"], run["settings"]["max_cost_usd"]) == (PRICE_IN, PRICE_OUT, MAX_COST)
    report = (run_dir / "report.md").read_text()
    assert re.search(rf"LLM usage: {served} calls, .* \${usage['cost_usd']:.4f}", report), report


@pytest.mark.parametrize("extra, message", [
    (["--model", "openai-compatible:my-local-model", "--base-url", "http://127.0.0.1:9/v1"],
     "--max-cost needs the price of 'openai-compatible:my-local-model'"),
    ([], "the offline scientist makes none"),
])
def test_a_cost_budget_nothing_could_count_is_refused(tmp_path: Path, extra: list[str], message: str) -> None:
    proc = _autosci("run", str(TASK), "--max-cost", "1.5", *extra, "--no-memory", "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run").exists()  # refused before anything was written
