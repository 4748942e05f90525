"""The CUDA path, checked on a lent GPU machine: gpt_bpb trained on a CUDA slot through the project's
own executor (workspace, sandbox with /dev/nvidia* bound, the slot's CUDA_VISIBLE_DEVICES), then
the card, tokens/s and the run's provenance written to BENCHMARKS.md (section ``gpu``).

    .venv/bin/python -m bench.gpu_check [--seconds 60] [--write]

On a machine without a usable GPU it says so in one line and exits 2, writing nothing: the CPU
figures elsewhere in BENCHMARKS.md stand for those machines.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from autosci_graph.state import Change
from autosci_graph.task import load_task
from autosci_graph.tools.local import LocalExecutor
from bench._report import markdown_table, write_section

ROOT = Path(__file__).resolve().parents[1]


def card() -> str | None:
    """The first GPU's name, driver and memory from nvidia-smi, or None when there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="gpt_bpb's training time budget")
    p.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section")
    args = p.parse_args()
    gpu = card()
    if gpu is None:
        print("gpu_check: no GPU here (nvidia-smi found none); run it on a machine with one", file=sys.stderr)
        sys.exit(2)
    task = load_task(ROOT / "examples" / "gpt_bpb").with_fixed(time_budget=args.seconds)
    with tempfile.TemporaryDirectory() as work, LocalExecutor(task, work, slots=1, device="cuda", keep_workspaces=False) as ex:
        result = ex.run(Change(), seed=0)
    if not result.ok or result.metric is None:
        sys.exit(f"gpu_check: the CUDA run failed ({result.status}): {result.error}\n{result.log_tail}")
    m = result.metrics
    seconds = m.get("training_seconds") or args.seconds
    tokens_per_s = m["tokens_seen"] / seconds if m.get("tokens_seen") else float("nan")
    prov = result.provenance
    rows: list[list[object]] = [["card", gpu], ["slot", prov.slot if prov else "?"], ["sandbox", prov.sandbox if prov else "?"],
            ["val_bpb", f"{result.metric:.4f}"], ["steps", int(m.get("steps", 0))], ["tokens/s", f"{tokens_per_s:,.0f}"],
            ["command", " ".join(prov.command) if prov else "?"]]
    body = (f"gpt_bpb at its default configuration on one CUDA slot through `LocalExecutor` (seed 0, training "
            f"budget {args.seconds:g} s).\n\n" + markdown_table(["what", "value"], rows))
    figures: dict[str, object] = {"gpu tokens/s, gpt_bpb default": round(tokens_per_s),
                                  "gpu val_bpb, gpt_bpb default": round(result.metric, 4)}
    if args.write:
        write_section("gpu", "CUDA path: gpt_bpb on a GPU slot", body, figures,
                      f".venv/bin/python -m bench.gpu_check --seconds {args.seconds:g} --write")
    else:
        print(body)
        print("\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
