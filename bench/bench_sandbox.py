"""Sandbox overhead: the same short experiments through LocalExecutor in bubblewrap and with
``--sandbox none``, in one run, alternating which goes first.

Both sides copy the workspace, enforce the budget, parse metrics and persist results; the only
difference is the bubblewrap launch (new namespaces, the bind mounts) and the resource caps.
The ratio of wall-clock times is the sandbox's per-run overhead (goal: <= 1.05).

    .venv/bin/python -m bench.bench_sandbox [--n 24] [--slots 2] [--sleep 0.1] [--repeats 5]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench._report import markdown_table, write_section
from bench.bench_executor import alternate, make_task, parse_overhead_args, run_executor


def main() -> None:
    args = parse_overhead_args(__doc__ or "")
    with tempfile.TemporaryDirectory() as tmp:
        task = make_task(Path(tmp) / "task", args.sleep)
        rows, ratio = alternate(args.repeats, args.n, lambda r: run_executor(task, Path(tmp) / f"none{r}", args.n, args.slots, sandbox="none"),
                                lambda r: run_executor(task, Path(tmp) / f"bwrap{r}", args.n, args.slots, sandbox="bwrap"))
    body = (
        f"{args.n} experiments of the executor benchmark's script (sleeps {args.sleep} s, prints 20 JSON lines and a "
        f"summary block) on {args.slots} slots, through `LocalExecutor` in bubblewrap (`--sandbox auto`: read-only "
        f"system, own workspace, private /tmp and home, no network, memory and process caps) and with `--sandbox none`. "
        f"Repeats alternate which side goes first; the figure is the median ratio of wall-clock times. Single repeats are "
        f"noisy on a loaded machine (the load is on the Machine line).\n\n"
        + markdown_table(["repeat", "--sandbox none (s)", "bubblewrap (s)", "ratio", "overhead per run (ms)"], rows)
    )
    write_section(
        "sandbox",
        "Sandbox overhead",
        body,
        {"sandbox overhead ratio": round(ratio, 3)},
        f".venv/bin/python -m bench.bench_sandbox {args.flags}",
    )


if __name__ == "__main__":
    main()
