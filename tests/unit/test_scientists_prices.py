"""The price table and the prices a run's cost budget is counted at."""

from __future__ import annotations

import pytest

from autosci_graph.errors import SettingsError
from autosci_graph.scientists.prices import PRICES_PER_1K, Price, price_for, resolve_prices


def test_a_dated_model_name_takes_its_listed_price_and_a_longer_name_is_not_its_prefix() -> None:
    assert price_for("openai:gpt-4o-mini-2024-07-18") == Price(*PRICES_PER_1K["openai:gpt-4o-mini"])
    assert price_for("openai:gpt-4o") == Price(*PRICES_PER_1K["openai:gpt-4o"])
    assert price_for("openai:gpt-4o-mini") != price_for("openai:gpt-4o")
    assert price_for("openai:gpt-4oX") is None and price_for("ollama:gpt-4o") is None


def test_given_prices_win_and_a_missing_half_comes_from_the_table() -> None:
    assert resolve_prices("openai:gpt-4o", 1.0, 2.0, 5.0) == Price(1.0, 2.0)
    listed = PRICES_PER_1K["openai:gpt-4o"]
    assert resolve_prices("openai:gpt-4o", 1.0, None, 5.0) == Price(1.0, listed[1])
    assert resolve_prices("openai:gpt-4o", None, None, None) == Price(*listed)
    assert resolve_prices("vllm:qwen", 0, 0, 1.0) == Price(0.0, 0.0)


@pytest.mark.parametrize("model, pin, pout, budget, message", [
    ("vllm:qwen", None, None, 1.0, "needs the price of 'vllm:qwen'"),
    ("vllm:qwen", 0.1, None, 1.0, "give both --price-in and --price-out"),
    (None, None, None, 1.0, "the offline scientist makes none"),
    ("openai:gpt-4o", -1.0, 1.0, 1.0, "--price-in -1.0"),
    ("openai:gpt-4o", None, None, 0.0, "more than 0"),
])
def test_a_budget_that_could_not_be_counted_is_refused(model: str | None, pin: float | None, pout: float | None,
                                                        budget: float, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_prices(model, pin, pout, budget)


def test_an_unpriced_model_without_a_cost_budget_is_fine() -> None:
    assert resolve_prices("vllm:qwen", None, None, None) is None


def test_the_server_input_refuses_an_uncountable_cost_budget_before_any_run() -> None:
    from autosci_graph.server import prepare

    task = "tests/integration/tasks/quadratic"
    with pytest.raises(SettingsError, match="needs the price of 'vllm:qwen'"):
        prepare({"task_dir": task, "model": "vllm:qwen", "max_cost": 2.0})
    assert prepare({"task_dir": task, "model": "vllm:qwen", "max_cost": 2.0, "price_in": 0.1, "price_out": 0.2})["run_id"]
