"""The lab as a tool a tool-calling agent can use.

``run_research_lab`` is a LangChain tool: an agent (any chat model with tool calling: ChatOpenAI,
ChatAnthropic, a local vLLM...) decides to run a short lab on a task and gets the champion back as
JSON. The agent loop is a small LangGraph graph (``agent`` ⇄ ``tools``).

With no model given, a scripted stand-in plays the agent (it calls the tool once, then reports the
result), so the example runs offline. Pass ``main(model=ChatOpenAI(...))`` for a real one.

Run: ``python examples/integrations/lab_as_tool.py``
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from autosci_graph import build_lab_graph

from _toy import toy_context

TASKS = {"toy": toy_context}


@tool("run_research_lab")
def run_research_lab(task: str, max_experiments: int = 8) -> str:
    """Run a short self-organizing research lab on a task and return its best result (the champion) as JSON.

    Args:
        task: Name of the task to improve; one of: toy.
        max_experiments: Experiment budget, baseline runs included (4 to 30).
    """
    if task not in TASKS:
        return json.dumps({"error": f"unknown task {task!r}; known: {sorted(TASKS)}"})
    ctx = TASKS[task](max_experiments=max(4, min(30, max_experiments)))
    graph = build_lab_graph().compile(name="autosci-lab")
    try:
        final = graph.invoke({"run_id": f"tool-{task}"}, context=ctx,
                             config={"recursion_limit": 10_000, "run_name": "run_research_lab",
                                     "tags": ["autosci", "tool"], "metadata": {"task": task}})
    finally:
        ctx.executor.close()
    champ = final["champion"]
    baseline = min(e["result"]["metric"] for e in final["log"] if e["kind"] == "baseline")
    return json.dumps({"task": task, "metric_name": ctx.task.metric.name, "baseline": baseline,
                       "champion": champ["metric"], "config": champ["config"], "experiments": len(final["log"]),
                       "stop_reason": final["stop_reason"]})


class ScriptedAgentModel(BaseChatModel):
    """An offline stand-in for a tool-calling chat model: first it calls ``run_research_lab``,
    then it answers from the tool's result. (langchain-core's fake models cannot bind tools.)"""

    tool_args: dict[str, Any] = {"task": "toy", "max_experiments": 8}

    @property
    def _llm_type(self) -> str:
        return "scripted-agent"

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedAgentModel":
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            r = json.loads(str(last.content))
            text = (f"The lab ran {r['experiments']} experiments on {r['task']}: {r['metric_name']} went from "
                    f"{r['baseline']:.3f} to {r['champion']:.3f} with {r['config']}.")
            message = AIMessage(content=text)
        else:
            message = AIMessage(content="", tool_calls=[
                {"name": "run_research_lab", "args": self.tool_args, "id": "call_lab_1", "type": "tool_call"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


def build_agent(model: BaseChatModel) -> StateGraph:
    """A minimal tool-calling agent: ``agent`` asks the model, ``tools`` runs what it called."""
    bound = model.bind_tools([run_research_lab])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode([run_research_lab]))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition, ["tools", END])
    g.add_edge("tools", "agent")
    return g


def main(model: BaseChatModel | None = None) -> dict[str, Any]:
    """Ask the agent to improve the toy task; returns its answer and the tool's result."""
    graph = build_agent(model or ScriptedAgentModel()).compile(name="research-agent")
    out = graph.invoke(
        {"messages": [SystemMessage("You improve ML models. Use run_research_lab to run experiments."),
                      HumanMessage("Improve the toy task's loss with a budget of 8 experiments.")]},
        config={"run_name": "research-agent", "tags": ["autosci", "example"], "metadata": {"example": "lab_as_tool"},
                "recursion_limit": 20},
    )
    tool_results = [json.loads(str(m.content)) for m in out["messages"] if isinstance(m, ToolMessage)]
    return {"answer": out["messages"][-1].content, "tool_results": tool_results, "messages": out["messages"]}


if __name__ == "__main__":
    print(main()["answer"])
