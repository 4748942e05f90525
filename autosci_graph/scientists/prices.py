"""What LLM calls cost, for the cost budget (``--max-cost``): one table, easy to update.

Prices are USD per 1,000 tokens (input, output), from the providers' public price pages. They
change; edit :data:`PRICES_PER_1K` (one line per model) or pass ``--price-in`` / ``--price-out``,
which always win. A model with no known price cannot have a cost budget: the run is refused rather
than run with a budget that never stops anything. Local servers (Ollama, vLLM, llama.cpp) cost no
tokens; give them ``--price-in 0 --price-out 0`` explicitly, or use ``--max-tokens``.

    >>> price_for("openai:gpt-4o-mini-2024-07-18")
    Price(input_per_1k=0.00015, output_per_1k=0.0006)
"""

from __future__ import annotations

from dataclasses import dataclass

from autosci_graph.errors import SettingsError
from autosci_graph.scientists.providers import split_model_string


@dataclass(frozen=True)
class Price:
    """USD per 1,000 input and output tokens."""

    input_per_1k: float
    output_per_1k: float


#: ``provider:model`` -> USD per 1k (input, output) tokens, as published on 2026-11-01. A dated
#: model name (``gpt-4o-mini-2024-07-18``) takes the price of its longest listed prefix.
PRICES_PER_1K: dict[str, tuple[float, float]] = {
    "openai:gpt-4o": (0.0025, 0.01),
    "openai:gpt-4o-mini": (0.00015, 0.0006),
    "openai:gpt-4.1": (0.002, 0.008),
    "openai:gpt-4.1-mini": (0.0004, 0.0016),
    "openai:gpt-4.1-nano": (0.0001, 0.0004),
    "openai:o4-mini": (0.0011, 0.0044),
    "anthropic:claude-sonnet-4-5": (0.003, 0.015),
    "anthropic:claude-haiku-4-5": (0.001, 0.005),
    "anthropic:claude-opus-4-1": (0.015, 0.075),
}


def price_for(spec: str) -> Price | None:
    """The listed price of a ``provider:model`` string, or ``None`` when it is not listed."""
    provider, name = split_model_string(spec)
    best: tuple[float, float] | None = None
    best_len = -1
    for key, value in PRICES_PER_1K.items():
        p, listed = key.split(":", 1)
        # "gpt-4o" must not price "gpt-4o-mini": a prefix counts only up to a "-" boundary, and the
        # longest listed prefix wins.
        if p == provider and (name == listed or name.startswith(listed + "-")) and len(listed) > best_len:
            best, best_len = value, len(listed)
    return Price(*best) if best is not None else None


def resolve_prices(model: str | None, price_in: float | None, price_out: float | None,
                   max_cost_usd: float | None, *, flag: str = "--max-cost") -> Price | None:
    """The prices a run counts its cost at: the ones given, else the table's; ``None`` when the run
    counts no cost. Raises :class:`SettingsError` when a cost budget could never be enforced."""
    for name, value in (("price-in", price_in), ("price-out", price_out)):
        if value is not None and value < 0:
            raise SettingsError(f"--{name} {value}: a price is USD per 1k tokens, 0 or more")
    if max_cost_usd is not None and max_cost_usd <= 0:
        raise SettingsError(f"{flag} {max_cost_usd}: a cost budget is USD, more than 0")
    if model is None:
        if max_cost_usd is not None:
            raise SettingsError(f"{flag} limits what LLM calls cost, and the offline scientist makes none; "
                                "give --model provider:name, or drop the cost budget")
        return None
    listed = price_for(model)
    if price_in is None and price_out is None:
        if listed is None and max_cost_usd is not None:
            raise SettingsError(
                f"{flag} needs the price of {model!r}, which is not in autosci_graph/scientists/prices.py; "
                "give it as --price-in USD --price-out USD (per 1k input / output tokens; 0 for a local server)")
        return listed
    if (price_in is None or price_out is None) and listed is None:
        raise SettingsError(f"give both --price-in and --price-out for {model!r} (its price is not listed)")
    return Price(input_per_1k=price_in if price_in is not None else listed.input_per_1k,  # type: ignore[union-attr]
                 output_per_1k=price_out if price_out is not None else listed.output_per_1k)  # type: ignore[union-attr]
