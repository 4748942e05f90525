"""Executor overhead: N short experiments through LocalExecutor vs a plain subprocess loop.

Both sides run the same script with the same concurrency (one worker per slot); the plain loop
only launches the process and writes its output to a file, the executor also copies the
workspace, scrubs the environment, enforces the budget on the process tree, parses metrics and
persists results. The ratio of wall-clock times is the executor's overhead (target: <= 1.10).

    .venv/bin/python -m bench.bench_executor [--n 16] [--slots 2] [--sleep 0.5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autosci_graph.state import Change, RunRequest
from autosci_graph.task import FloatKnob, Metric, ResearchTask
from autosci_graph.tools.local import LocalExecutor
from autosci_graph.tools.sandbox import SandboxMode
from bench._report import markdown_table, write_section

SCRIPT = """\
import sys, time
opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
time.sleep(float(opts.get("sleep", 0)))
for step in range(20):
    print('{"step": %d, "loss": %f}' % (step, 1.0 / (step + 1)))
print("---")
print("score: %s" % opts.get("x", "1.0"))
"""


def make_task(root: Path, sleep: float) -> ResearchTask:
    root.mkdir(parents=True)
    (root / "train.py").write_text(SCRIPT)
    return ResearchTask(
        name="bench", root=root, command=("{python}", "train.py", "--seed={seed}"), metric=Metric(name="score"),
        editable=("train.py",), knobs={"x": FloatKnob(low=0, high=100, default=1.0)}, fixed={"sleep": sleep}, timeout=60,
    )


def run_executor(task: ResearchTask, work: Path, n: int, slots: int, sandbox: SandboxMode = "auto") -> float:
    with LocalExecutor(task, work, slots=slots, sandbox=sandbox) as ex:
        t0 = time.perf_counter()
        results = ex.run_many([RunRequest(experiment_id=f"e{i}", change=Change(knobs={"x": float(i)})) for i in range(n)])
        elapsed = time.perf_counter() - t0
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    return elapsed


def run_plain(task: ResearchTask, work: Path, n: int, slots: int) -> float:
    work.mkdir(parents=True)

    def one(i: int) -> int:
        argv = [sys.executable, "train.py", "--seed=0", f"--sleep={task.fixed['sleep']}", f"--x={float(i)}"]
        with open(work / f"{i}.log", "wb") as out:
            # No timeout: subprocess's timed wait polls (up to 50 ms late), which would flatter us.
            return subprocess.run(argv, cwd=task.root, stdout=out, stderr=subprocess.STDOUT).returncode

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=slots) as pool:
        codes = list(pool.map(one, range(n)))
    elapsed = time.perf_counter() - t0
    assert codes == [0] * n
    return elapsed


def parse_overhead_args(doc: str) -> argparse.Namespace:
    """The options of an overhead benchmark (this one, bench_sandbox): --n, --slots, --sleep, --repeats."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="experiments per measurement")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds each experiment sleeps")
    parser.add_argument("--repeats", type=int, default=5, help="alternating measurements of each side")
    args = parser.parse_args()
    args.flags = f"--n {args.n} --slots {args.slots} --sleep {args.sleep} --repeats {args.repeats}"
    return args


def alternate(repeats: int, n: int, base: Callable[[int], float], other: Callable[[int], float]) -> tuple[list[list[object]], float]:
    """Time ``base`` and ``other`` (each given the repeat number) ``repeats`` times, alternating
    which goes first so load changes on a shared machine hit both sides; the table rows (repeat,
    base s, other s, ratio, overhead per run in ms over ``n`` runs) and the median ratio."""
    rows: list[list[object]] = []
    ratios = []
    for r in range(repeats):
        if r % 2:
            b_other = other(r)
            b_base = base(r)
        else:
            b_base = base(r)
            b_other = other(r)
        ratios.append(b_other / b_base)
        rows.append([r + 1, b_base, b_other, ratios[-1], (b_other - b_base) / n * 1000])
    return rows, statistics.median(ratios)


def main() -> None:
    args = parse_overhead_args(__doc__ or "")
    with tempfile.TemporaryDirectory() as tmp:
        task = make_task(Path(tmp) / "task", args.sleep)
        rows, ratio = alternate(args.repeats, args.n, lambda r: run_plain(task, Path(tmp) / f"plain{r}", args.n, args.slots),
                                lambda r: run_executor(task, Path(tmp) / f"exec{r}", args.n, args.slots))
    body = (
        f"{args.n} experiments of a script that sleeps {args.sleep} s and prints 20 JSON lines and a "
        f"summary block, on {args.slots} slots, through `LocalExecutor` and through a plain "
        f"`subprocess.run` loop (no budget, output to a file) with the same concurrency. Repeats alternate "
        f"which side goes first; the figure is the median ratio. Single repeats are noisy on a loaded "
        f"machine (the load is on the Machine line).\n\n"
        + markdown_table(["repeat", "plain loop (s)", "executor (s)", "ratio", "overhead per run (ms)"], rows)
    )
    write_section(
        "executor",
        "Executor overhead",
        body,
        {"executor overhead ratio": round(ratio, 3)},
        f".venv/bin/python -m bench.bench_executor {args.flags}",
    )


if __name__ == "__main__":
    main()
