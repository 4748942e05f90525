"""Benchmark the experiment memory: ingest rate, recall latency at 1k and 10k records, cold start.

Each figure for the memory (query embedding included) is measured beside raw Chroma queried with a
precomputed embedding on the same collection in the same run, so the cost of our layer is visible.

    .venv/bin/python -m bench.bench_memory            # writes the "memory" section of BENCHMARKS.md
    .venv/bin/python -m bench.bench_memory --quick    # smaller, for a smoke test; writes nothing
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autosci_graph.memory.chroma import ChromaMemory
from autosci_graph.memory.record import MemoryRecord
from bench._report import markdown_table, write_section

TASKS = ["gpt-bpb", "gb1-fitness", "solubility-rmse", "cifar-acc", "qm9-mae"]
AXES = {
    "learning_rate": ["raise the learning rate to {v:.0e}", "cut the learning rate to {v:.0e}"],
    "batch_size": ["use batches of {n} examples", "shrink the batch to {n}"],
    "n_embd": ["widen the model to {n} hidden units", "narrow the model to {n} hidden units"],
    "n_layer": ["stack {k} layers", "keep only {k} layers"],
    "dropout": ["set dropout to {p:.2f}", "remove dropout"],
    "warmup_steps": ["warm up over {n} steps", "skip warmup"],
    "weight_decay": ["weight decay {p:.2f}", "turn weight decay off"],
    "grad_clip": ["clip gradients at norm {p:.1f}", "stop clipping gradients"],
    "optimizer": ["switch the optimizer to {opt}", "go back to {opt}"],
    "schedule": ["use a {sched} learning-rate schedule", "hold the learning rate constant after {n} steps"],
}
OUTCOMES = [
    ("diverged", "crash", "loss became NaN at step {n}"),
    ("oom", "crash", "CUDA out of memory, tried to allocate {k}.00 GiB"),
    ("timeout", "crash", "killed after the {n} s budget"),
    ("crash", "crash", "RuntimeError: shape mismatch in layer {k}"),
    ("ok", "discard", "validation got worse by {p:.3f}; overfitting"),
    ("ok", "discard", "gain of {p:.4f} is inside the noise"),
    ("ok", "keep", ""),
]


def synthetic_records(n: int, seed: int = 0) -> list[MemoryRecord]:
    """``n`` distinct, realistic-looking records across five tasks and ten axes."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        axis = rng.choice(list(AXES))
        direction = rng.choice(["increase", "decrease"])
        template = AXES[axis][direction == "decrease"]
        values = dict(v=10 ** rng.uniform(-6, -1), n=rng.choice([16, 64, 256, 1024, 4096]) + i % 7, k=rng.randint(1, 48),
                      p=rng.uniform(0, 0.5), opt=rng.choice(["AdamW", "Muon", "SGD with momentum", "Lion"]),
                      sched=rng.choice(["cosine", "linear", "step", "one-cycle"]))
        status, outcome, error = rng.choice(OUTCOMES)
        out.append(MemoryRecord(
            task=rng.choice(TASKS), run_id=f"run-{i // 500}", experiment_id=f"e{i:05d}", team=f"t{rng.randint(1, 3)}",
            axis=axis, direction=direction, status=status, outcome=outcome,  # type: ignore[arg-type]
            change=template.format(**values), hypothesis=f"{axis.replace('_', ' ')} limits {rng.choice(['convergence', 'generalisation', 'throughput'])}",
            metric=None if status != "ok" else rng.uniform(0.5, 2.0), error=error.format(**values), timestamp=1.7e9 + i,
        ))
    return out


def queries(n: int, seed: int = 1) -> list[str]:
    """Distinct query texts (never cached by the embedder, so every recall embeds its query)."""
    rng = random.Random(seed)
    verbs = ["try", "what about", "should we", "plan:", "proposal:"]
    return [f"{rng.choice(verbs)} {rng.choice(AXES[rng.choice(list(AXES))]).format(v=10 ** rng.uniform(-6, -1), n=rng.randint(8, 8192), k=rng.randint(1, 64), p=rng.uniform(0, 0.5), opt='Adam', sched='cosine')} #{i}"
            for i in range(n)]


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def measure_recall(mem: ChromaMemory, texts: list[str]) -> dict[str, tuple[float, float]]:
    """p50/p95 (ms) of memory.recall with and without a filter, and of raw Chroma on precomputed vectors."""
    where = {"task": "gpt-bpb", "failed": True}
    vectors = [mem._embed_query(t) for t in texts[: len(texts) // 2]]  # precomputed, for raw Chroma
    col = mem._collection
    timings: dict[str, list[float]] = {"memory": [], "memory+filter": [], "chroma": [], "chroma+filter": []}
    half = len(texts) // 2
    for t in texts[half:][: half // 2]:
        t0 = time.perf_counter(); mem.recall(t, k=5); timings["memory"].append(time.perf_counter() - t0)
    for t in texts[half:][half // 2:]:
        t0 = time.perf_counter(); mem.recall(t, k=5, where=where); timings["memory+filter"].append(time.perf_counter() - t0)
    for v in vectors:
        t0 = time.perf_counter(); col.query(query_embeddings=[v], n_results=5); timings["chroma"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        col.query(query_embeddings=[v], n_results=5, where={"$and": [{"task": {"$eq": "gpt-bpb"}}, {"failed": {"$eq": True}}]})
        timings["chroma+filter"].append(time.perf_counter() - t0)
    return {k: percentiles(v) for k, v in timings.items()}


COLD_MEMORY = """
from autosci_graph.memory.chroma import ChromaMemory
import sys
hits = ChromaMemory(sys.argv[1]).recall("raise the learning rate until the loss explodes", k=5)
assert hits
"""
COLD_CHROMA = """
import chromadb, json, sys
from chromadb.config import Settings
col = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False)).get_collection("autosci_experiments", embedding_function=None)
assert col.query(query_embeddings=[json.loads(sys.argv[2])], n_results=5)["ids"][0]
"""


def cold_start(code: str, *args: str, repeats: int = 3, env: dict[str, str] | None = None) -> float:
    """Median seconds from launching a new Python process to its first recall returning."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, *args], check=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 and 1000 records, no BENCHMARKS.md")
    args = parser.parse_args()
    sizes = (200, 1000) if args.quick else (1000, 10000)
    load_before = os.getloadavg()[0]
    records = synthetic_records(sizes[-1])
    figures: dict[str, object] = {}
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        store = Path(tmp) / "memory"
        mem = ChromaMemory(store)
        mem.recall("load the model before timing anything", k=1)
        done = 0
        for size in sizes:
            batch = records[done:size]
            t0 = time.perf_counter(); mem.add(batch); ingest_s = time.perf_counter() - t0
            vectors = mem._embed_documents([r.document() for r in batch[:500]])
            t0 = time.perf_counter()
            mem._collection.upsert(ids=[f"raw-{r.id}" for r in batch[:500]], embeddings=vectors)
            raw_rate = 500 / (time.perf_counter() - t0)
            mem._collection.delete(ids=[f"raw-{r.id}" for r in batch[:500]])
            done = size
            assert mem.count() == size
            lat = measure_recall(mem, queries(200 if not args.quick else 60, seed=size))
            label = f"{size // 1000}k" if size >= 1000 else str(size)
            figures[f"ingest rate, {len(batch)} records into {label} (records/s, embedding included)"] = round(len(batch) / ingest_s, 1)
            figures[f"raw chroma upsert rate at {label} (records/s, precomputed vectors)"] = round(raw_rate, 1)
            for name, (p50, p95) in lat.items():
                rows.append([label, name, round(p50, 2), round(p95, 2)])
            figures[f"recall p50 at {label} (ms, query embedding included)"] = round(lat["memory"][0], 2)
            figures[f"recall p95 at {label} (ms, query embedding included)"] = round(lat["memory"][1], 2)
            figures[f"raw chroma query p50 at {label} (ms, precomputed embedding)"] = round(lat["chroma"][0], 2)
            figures[f"raw chroma query p95 at {label} (ms, precomputed embedding)"] = round(lat["chroma"][1], 2)
        mem.close()
        with ChromaMemory(store, read_only=True) as reader:  # no writer lock: the cold-start processes write
            vec = json.dumps(reader._embed_query("raise the learning rate until the loss explodes").tolist())
        figures["cold start, process start to first recall (s)"] = round(cold_start(COLD_MEMORY, str(store)), 2)
        figures["raw chroma cold start, process start to first query with a precomputed embedding (s)"] = round(cold_start(COLD_CHROMA, str(store), vec), 2)
        with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
            env = {**os.environ, "AUTOSCI_CACHE_DIR": cache}
            figures["first use on a machine, including the one-time ONNX export (s)"] = round(cold_start(COLD_MEMORY, str(store), repeats=1, env=env), 2)
    p50_10k = figures.get("recall p50 at 10k (ms, query embedding included)")
    cold = figures["cold start, process start to first recall (s)"]
    body = (
        "ChromaMemory on a local folder with the default offline embeddings (all-MiniLM-L6-v2, ONNX), k=5. "
        "Synthetic but varied records (5 tasks, 10 axes, 7 outcomes). `memory` figures include embedding the "
        "query; `chroma` figures query the same collection with a precomputed embedding. Filter: "
        "`task=gpt-bpb, failed=True`. Ingest includes embedding every document.\n\n"
        + markdown_table(["records", "query", "p50 ms", "p95 ms"], rows)
        + f"\n\nTargets: recall p50 at 10k <= 25 ms (measured {p50_10k}), cold start <= 3 s (measured {cold}). "
        + f"Machine load average (1 min) at start/end: {load_before:.1f}/{os.getloadavg()[0]:.1f}; load lowers "
        "throughput, so on a loaded machine these figures are lower bounds."
    )
    if args.quick:
        print(json.dumps(figures, indent=1))
        print(body)
        return
    write_section("memory", "Experiment memory (Chroma + offline MiniLM)", body, figures, "python -m bench.bench_memory")


if __name__ == "__main__":
    main()
