"""The JSON schema a server constrains an answer with (``response_format`` of type ``json_schema``,
or the ``parameters`` of the one tool a ``function_calling`` request forces).

Servers such as llama.cpp's and vLLM turn this schema into a grammar, so a small model can only
write well-formed answers. Two things matter for small models, measured on llama.cpp (see
``BENCHMARKS.md``):

* **bounds**: every list has ``maxItems`` and every string ``maxLength``; unbounded, a small model
  loops inside a list or a string until it runs out of tokens and the answer is cut off;
* **the task's own names**: on a task without editable files, an axis is one of the task's axes and
  a proposal sets exactly the one knob its axis names, typed, so the grammar cannot invent a knob,
  leave the change empty or tag one knob while moving another.

The schema only shapes what the model can write. Validation stays with the pydantic answer models
and the checks of :mod:`~autosci_graph.scientists._answers`, whose messages drive repair.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from autosci_graph.lab.critique import CritiqueRules, unit_step
from autosci_graph.scientists._answers import known_axes, step_examples
from autosci_graph.scientists.base import LabView
from autosci_graph.task import CategoricalKnob, IntKnob

#: Longest string the grammar lets through, per field name; others get ``DEFAULT_MAX_CHARS``.
MAX_CHARS = {"diff": 6000, "reason": 400, "statement": 300, "rationale": 300}
DEFAULT_MAX_CHARS = 200
#: Longest list, per field name; others get ``DEFAULT_MAX_ITEMS``.
MAX_ITEMS = {"axes": 3}
DEFAULT_MAX_ITEMS = 4


def response_format(schema: type[BaseModel], view: LabView, *, name: str, max_items: int | None = None,
                    step_menu: bool = False) -> dict[str, Any]:
    """The ``response_format`` payload for an answer of ``schema`` about ``view``; ``max_items``
    bounds the answer's top-level list (the proposals or hypotheses asked for). ``step_menu``: a
    numeric knob moves by one of the steps the prompt shows (see :func:`_use_task_names`)."""
    json_schema = bounded(schema.model_json_schema(), top_items=max_items)
    if not view.task.editable:
        _use_task_names(json_schema, view, step_menu=step_menu)
    return {"type": "json_schema", "json_schema": {"name": name, "schema": json_schema, "strict": True}}


def answer_tool(fmt: dict[str, Any]) -> dict[str, Any]:
    """The one tool of a ``function_calling`` request, in OpenAI's format (LangChain's ``bind_tools``
    converts it for other providers): its ``parameters`` is the schema of ``fmt``, a
    :func:`response_format` payload, bounds and task names included."""
    spec = fmt["json_schema"]
    return {"type": "function", "function": {
        "name": spec["name"], "parameters": spec["schema"],
        "description": "Give your answer: call this once, with the whole answer object as the arguments.",
    }}


def bounded(schema: dict[str, Any], *, top_items: int | None = None) -> dict[str, Any]:
    """A copy of ``schema`` with ``maxItems`` on every array and ``maxLength`` on every string."""
    out = copy.deepcopy(schema)

    def walk(node: Any, field: str | None, top: bool) -> None:
        if isinstance(node, dict):
            if node.get("type") == "array" and "maxItems" not in node:
                node["maxItems"] = top_items if top and top_items else MAX_ITEMS.get(field or "", DEFAULT_MAX_ITEMS)
            if node.get("type") == "string" and "enum" not in node and "maxLength" not in node:
                node["maxLength"] = MAX_CHARS.get(field or "", DEFAULT_MAX_CHARS)
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    for prop, sub in value.items():
                        walk(sub, prop, top=node is out)
                elif key == "$defs" and isinstance(value, dict):
                    for sub in value.values():
                        walk(sub, None, top=False)
                elif key in ("items", "anyOf", "additionalProperties"):
                    walk(value, field, top)
        elif isinstance(node, list):
            for item in node:
                walk(item, field, top)

    walk(out, None, top=False)
    return out


def _use_task_names(schema: dict[str, Any], view: LabView, *, step_menu: bool = False) -> None:
    """Axes from the task's axes. A proposal is one of the task's knobs: its axis names that knob,
    ``knobs`` sets exactly that knob, typed, and the direction is one the knob can take, so the
    grammar cannot invent a knob, leave the change empty or tag one knob while moving another.

    With ``step_menu``, a numeric knob's value is one of four steps from the champion's (x2, x4,
    /2, /4 on a log scale; 10% and 20% of the range otherwise), each with its direction and its
    bold tag fixed. Measured on Qwen2.5-Coder-0.5B: free numbers were the champion's value again in
    most answers, so almost no proposal ran; the menu leaves the model the choice of knob and step."""
    axes = sorted(known_axes(view))
    defs = schema.get("$defs", {})
    for name, node in [("", schema), *defs.items()]:
        props = node.get("properties", {})
        if "axes" in props and axes:
            props["axes"]["items"] = {"type": "string", "enum": axes}
        if "axis" in props and "knobs" in props and view.task.knobs:
            props.pop("diff", None)  # a task without editable files takes no code change
            variants = []
            for knob_name, knob in view.task.knobs.items():
                if isinstance(knob, CategoricalKnob):
                    value: dict[str, Any] = {"enum": list(knob.choices)}
                    directions = ["set"]
                else:
                    value = {"type": "integer" if isinstance(knob, IntKnob) else "number"}
                    directions = ["increase", "decrease"]
                variant_props = dict(props)
                variant_props["axis"] = {"type": "string", "enum": [knob_name]}
                variant_props["knobs"] = {"type": "object", "properties": {knob_name: value}, "required": [knob_name],
                                          "additionalProperties": False}
                variant_props["direction"] = {"type": "string", "enum": directions}
                required = sorted(set(node.get("required", [])) | {"axis", "knobs", "direction"})
                old = view.champion.config.get(knob_name, knob.default)
                steps = [(v, d) for size in (1, 2) for v, d in step_examples(knob, old, size)]
                if step_menu and steps:
                    for v, d in dict.fromkeys(steps):  # a step clipped at a bound may repeat
                        # Bold exactly when the critique rules would call it bold: a tag the grammar
                        # fixes cannot be the reason a proposal is sent back.
                        moved = unit_step(view.task, view.champion.config, {knob_name: v}, knob_name)
                        bold = moved is not None and moved >= CritiqueRules().bold_min_step
                        variants.append({"type": "object", "additionalProperties": False, "required": sorted({*required, "bold"}),
                                         "properties": {**variant_props, "direction": {"type": "string", "enum": [d]},
                                                        "knobs": {"type": "object", "properties": {knob_name: {"enum": [v]}},
                                                                  "required": [knob_name], "additionalProperties": False},
                                                        "bold": {"type": "boolean", "enum": [bold]}}})
                    continue
                variants.append({"type": "object", "properties": variant_props, "additionalProperties": False,
                                 "required": required})
            replacement = {"anyOf": variants}
            if name:
                defs[name] = replacement
            else:
                schema.clear()
                schema.update(replacement)
