"""The experiment memory as a retriever in a small retrieval chain (LCEL).

A lab writes every experiment to its memory. Afterwards anyone can ask it questions::

    chain = {"context": retriever | format_docs, "question": passthrough} | prompt | model | parser
    chain.invoke("What failed with the learning rate (lr)?")

The retriever is ``memory.as_retriever(failed=True, k=...)``: only dead ends (discarded and failed
runs), most similar to the question first. Any chat model answers; with none given, an offline
extractive stand-in quotes the matching records, so the example runs without an API key.

Run: ``python examples/integrations/memory_rag.py``
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from autosci_graph import InMemoryMemory, build_lab_graph
from autosci_graph.memory.base import ExperimentMemory

from _toy import toy_context

QUESTION = "What failed with the learning rate (lr)?"

PROMPT = ChatPromptTemplate.from_messages([
    ("system", "You answer questions about past experiments of a research lab, using only the records below. "
               "Cite experiment ids.\n\nRECORDS:\n{context}"),
    ("human", "{question}"),
])


def format_docs(docs: list[Document]) -> str:
    """One line per record: id, axis, outcome, and the record's own sentence."""
    return "\n".join(f"- [{d.metadata['id']}] axis={d.metadata.get('axis') or '-'} "
                     f"outcome={d.metadata.get('outcome') or d.metadata.get('status')}: {d.page_content}" for d in docs)


def _extractive_answer(prompt: PromptValue) -> str:
    """Offline stand-in for a chat model: quote the records about the axis the question names."""
    messages = prompt.to_messages()
    records = [line for line in str(messages[0].content).splitlines() if line.startswith("- [")]
    hits = [line[2:] for line in records if "axis=lr " in line]
    if not hits:
        return "No recorded learning-rate failures."
    return f"{len(hits)} learning-rate experiments failed or were discarded:\n" + "\n".join(hits)


def build_chain(memory: ExperimentMemory, model: BaseChatModel | Runnable[Any, Any] | None = None, *, k: int = 8) -> Runnable[str, str]:
    retriever = memory.as_retriever(k=k, failed=True).with_config(run_name="recall_dead_ends")
    answer = model or RunnableLambda(_extractive_answer, name="extractive_answer")
    chain = {"context": retriever | RunnableLambda(format_docs, name="format_docs"),
             "question": RunnablePassthrough()} | PROMPT | answer | StrOutputParser()
    return chain.with_config(run_name="ask_the_lab_memory", tags=["autosci", "example"])


def fill_memory() -> ExperimentMemory:
    """A short lab on the toy task, remembering every experiment (in memory; ChromaMemory persists)."""
    memory = InMemoryMemory(task="toy")
    ctx = toy_context(max_experiments=14, memory=memory)
    try:
        build_lab_graph().compile().invoke({"run_id": "rag"}, context=ctx, config={"recursion_limit": 10_000})
    finally:
        ctx.executor.close()
    return memory


def main(model: BaseChatModel | None = None, question: str = QUESTION) -> dict[str, Any]:
    """Fill a memory with a short lab, then ask it ``question``; returns the answer and what was retrieved."""
    memory = fill_memory()
    chain = build_chain(memory, model)
    docs = memory.as_retriever(k=8, failed=True).invoke(question)
    return {"answer": chain.invoke(question), "retrieved": docs, "memory": memory}


if __name__ == "__main__":
    print(main()["answer"])
