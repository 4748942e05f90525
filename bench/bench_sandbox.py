"""Sandbox overhead: the same short experiments through LocalExecutor in bubblewrap and with
``--sandbox none``, in one run, alternating which goes first.

Both sides copy the workspace, enforce the budget, parse metrics and persist results; the only
difference is the bubblewrap launch (new namespaces, the bind mounts) and the resource caps.
The ratio of wall-clock times is the sandbox's per-run overhead (goal: <= 1.05).

    .venv/bin/python -m bench.bench_sandbox [--n 24] [--slots 2] [--sleep 0.1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench._report import markdown_table, write_section
from bench.bench_executor import make_task, run_executor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="experiments per measurement")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.1, help="seconds each experiment sleeps")
    parser.add_argument("--repeats", type=int, default=5, help="alternating measurements of each side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        task = make_task(Path(tmp) / "task", args.sleep)
        rows, ratios = [], []
        for r in range(args.repeats):  # alternate order, so load changes on a shared machine hit both sides
            order = ["none", "bwrap"] if r % 2 == 0 else ["bwrap", "none"]
            took = {mode: run_executor(task, Path(tmp) / f"{mode}{r}", args.n, args.slots, sandbox=mode) for mode in order}  # type: ignore[arg-type]
            ratios.append(took["bwrap"] / took["none"])
            rows.append([r + 1, took["none"], took["bwrap"], ratios[-1], (took["bwrap"] - took["none"]) / args.n * 1000])
    ratio = statistics.median(ratios)
    body = (
        f"{args.n} experiments of the executor benchmark's script (sleeps {args.sleep} s, prints 20 JSON lines and a "
        f"summary block) on {args.slots} slots, through `LocalExecutor` in bubblewrap (`--sandbox auto`: read-only "
        f"system, own workspace, private /tmp and home, no network, memory and process caps) and with `--sandbox none`. "
        f"Repeats alternate which side goes first; the figure is the median ratio of wall-clock times. The machine was "
        f"shared with other work, so single repeats are noisy.\n\n"
        + markdown_table(["repeat", "--sandbox none (s)", "bubblewrap (s)", "ratio", "overhead per run (ms)"], rows)
    )
    write_section(
        "sandbox",
        "Sandbox overhead",
        body,
        {"sandbox overhead ratio": round(ratio, 3)},
        f".venv/bin/python -m bench.bench_sandbox --n {args.n} --slots {args.slots} --sleep {args.sleep} --repeats {args.repeats}",
    )


if __name__ == "__main__":
    main()
