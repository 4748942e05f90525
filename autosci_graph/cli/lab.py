"""``autosci run`` and ``autosci report``: a lab run from the terminal, and its outputs."""

from __future__ import annotations

import argparse
import re
import sys
import time
import uuid
from pathlib import Path

from autosci_graph.cli.experiment import add_sandbox_flag, parse_literal, parse_pairs
from autosci_graph.errors import SettingsError
from autosci_graph.scientists.structured_output import CHOICES


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``10m``, ``1h30m``, ``2h`` or a plain number of seconds."""
    t = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        raise SettingsError(f"--deadline {text!r}: expected a duration like 90s, 10m, 1h30m or 2h")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def cmd_run(args: argparse.Namespace) -> int:
    from autosci_graph.cli.approve import TerminalApprover, require_terminal
    from autosci_graph.cli.live import LiveView
    from autosci_graph.graphs.context import LabSettings
    from autosci_graph.runner import RunSpec, execute, settings_dict, with_final_eval

    from autosci_graph.cli import cluster

    if args.resume and cluster.is_postgres_url(args.resume):  # resumed from the database alone
        run_dir, spec = cluster.resume_from_url(args)
        if args.sandbox != "auto":
            spec.sandbox = args.sandbox
        if args.deadline:
            spec.settings["deadline"] = time.time() + parse_duration(args.deadline)
        if args.approve:
            spec.settings["human_approval"] = True
        resume = True
    elif args.resume:
        run_dir = Path(args.resume).expanduser().resolve()
        spec = RunSpec.load(run_dir)
        cluster.apply_resume_flags(args, spec)
        if args.sandbox != "auto":  # a resumed run keeps its sandbox unless told otherwise
            spec.sandbox = args.sandbox
        if args.deadline:
            spec.settings["deadline"] = time.time() + parse_duration(args.deadline)
        if args.approve:
            spec.settings["human_approval"] = True
        resume = True
    else:
        if not args.task_dir:
            raise SettingsError("give a task folder (autosci run examples/gpt_bpb) or --resume RUN_DIR")
        from autosci_graph.task import load_task

        task = load_task(args.task_dir)
        fixed = {k: parse_literal(v) for k, v in parse_pairs(args.fixed or [], "--fixed").items()}
        settings = LabSettings(
            n_teams=args.teams, max_experiments=args.max_experiments,
            deadline=time.time() + parse_duration(args.deadline) if args.deadline else None,
            stop_after_no_keep=args.stop_after_no_keep or None, max_tokens=args.max_tokens,
            max_cost_usd=args.max_cost, max_device_seconds=args.max_device_seconds, seed=args.seed,
            max_failed_rounds=args.max_failed_rounds, human_approval=args.approve,
        )
        if args.approve and args.single_agent:
            raise SettingsError("--approve gates the lab's team proposals; the --single-agent baseline has none")
        if args.approve:
            require_terminal()  # before anything is written
        from autosci_graph.scientists.prices import resolve_prices

        # A cost budget nothing could count is refused here, before anything is written.
        price = resolve_prices(args.model, args.price_in, args.price_out, args.max_cost)
        if args.model:  # fail on a missing provider package before anything is written
            from autosci_graph.scientists.providers import resolve_model

            resolve_model(args.model, base_url=args.base_url)
            if args.critic_model:
                resolve_model(args.critic_model, base_url=args.base_url)
        from autosci_graph.tools.sandbox import make_sandbox

        make_sandbox(args.sandbox, network=task.network)  # a missing bubblewrap fails here, before anything is written
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        run_dir = Path(args.run_dir or Path("runs") / f"{task.name}-{run_id}").expanduser().resolve()
        if (run_dir / "run.json").exists():
            raise SettingsError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or pick another --run-dir")
        placement = cluster.spec_fields(args)  # database, memory server, Ray cluster: reachable, or fail here
        spec = RunSpec(task_dir=str(task.root), run_id=run_id, settings=settings_dict(settings),
                       mode="single" if args.single_agent else "lab", model=args.model, critic_model=args.critic_model,
                       base_url=args.base_url, slots=args.slots, memory=not args.no_memory,
                       memory_path=args.memory_path, fixed=fixed, sandbox=args.sandbox,
                       call_timeout_s=args.call_timeout or None,
                       price_in=price.input_per_1k if price else None, price_out=price.output_per_1k if price else None,
                       structured_output=args.structured_output, max_answer_tokens=args.max_answer_tokens,
                       step_menu=args.step_menu, **placement)
        cluster.record(spec)
        spec.save(run_dir)
        resume = False
    task = spec.task()
    approval = spec.lab_settings().human_approval
    if approval and resume:
        require_terminal()
    again = args.resume if args.resume and cluster.is_postgres_url(args.resume) else str(run_dir)
    try:
        with LiveView(task, spec.lab_settings()) as view:
            view.console.print(f"[autosci] run directory: {run_dir}", highlight=False, markup=False)
            approver = TerminalApprover(view.console, resume_hint=again, pause=view.paused) if approval else None
            outcome = execute(spec, run_dir, resume=resume, on_update=view, approver=approver)
    except KeyboardInterrupt:  # execute() has stopped the experiments in flight; the checkpoint stays
        print(f"autosci: interrupted; experiments in flight were stopped and run again on resume: autosci run --resume {again}",
              file=sys.stderr)
        return 130
    champ = outcome.state.get("champion") or {}
    print(f"stop: {outcome.state.get('stop_reason')}")
    print(f"champion {task.metric.name}: {champ.get('metric')}  ({champ.get('experiment_id') or 'default configuration'})")
    fe = with_final_eval({}, outcome.run_dir).get("final_eval")
    if fe:
        print(f"held-out {fe.get('metric_name')}: {fe.get('metric')}  ({fe.get('status')})")
    print(f"report: {outcome.outputs['report']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from autosci_graph.runner import load_state, write_outputs

    run_dir = Path(args.run_dir).expanduser().resolve()
    spec, state = load_state(run_dir)
    outputs = write_outputs(state, spec.task(), run_dir)
    if args.html:
        from autosci_graph.reports.html import write_html
        from autosci_graph.runner import with_final_eval

        outputs["html"] = write_html(with_final_eval(state, run_dir), spec.task(), run_dir)
    for name, path in outputs.items():
        print(f"{name}: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run a self-organizing lab (or the single-agent baseline) on a task")
    p.add_argument("task_dir", nargs="?", help="task folder with a task.toml")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a crashed or stopped run from its checkpoint "
                   "(a run directory, or the postgresql:// URL of its --checkpoint)")
    p.add_argument("--model", help="provider:model for an LLM scientist (default: the offline SearchScientist)")
    p.add_argument("--critic-model", help="provider:model for critiques (default: --model)")
    p.add_argument("--base-url", help="base URL of an OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama)")
    p.add_argument("--seed", type=int, default=0, help="the lab's seed: same seed and same results, same decisions (default 0)")
    p.add_argument("--teams", type=int, default=3, help="teams formed at start and on regroup (default 3)")
    p.add_argument("--slots", type=int, help="concurrent experiments (default: GPUs, else CPU cores)")
    p.add_argument("--max-experiments", type=int, default=30, help="experiment budget (default 30)")
    p.add_argument("--deadline", help="wall-clock budget, e.g. 10m or 2h; no experiment starts that could end after it")
    p.add_argument("--max-tokens", type=int, help="LLM token budget (input + output)")
    p.add_argument("--max-cost", type=float, help="LLM cost budget in USD, at --price-in/--price-out or the listed price of --model")
    p.add_argument("--price-in", type=float, metavar="USD", help="USD per 1k input tokens (default: the model's listed price)")
    p.add_argument("--price-out", type=float, metavar="USD", help="USD per 1k output tokens (default: the model's listed price)")
    p.add_argument("--max-device-seconds", type=float, help="budget of summed experiment run time")
    p.add_argument("--call-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="seconds one LLM call may take; a slower one is a failed turn, retried later (default 120; 0: no limit)")
    p.add_argument("--structured-output", choices=CHOICES, default="prompt",
                   help="prompt (default): the schema is in the prompt only, for any model; json_schema: also send the "
                        "answer's bounded schema as response_format (vLLM, llama.cpp, LM Studio); function_calling: send it "
                        "as one forced tool and read the call's arguments (Anthropic, OpenAI; needs tool calling); "
                        "auto: pick per provider (openai-compatible: json_schema, openai/anthropic: function_calling, "
                        "others: prompt)")
    p.add_argument("--step-menu", action="store_true",
                   help="with --structured-output json_schema or function_calling: a knob moves x2, x4, /2 or /4 from the champion "
                        "(10%%/20%% of a linear range); for small models, which otherwise restate the champion's value")
    p.add_argument("--max-answer-tokens", type=int, metavar="N",
                   help="most tokens one LLM answer may have (bound it for small local models, e.g. 512)")
    p.add_argument("--max-failed-rounds", type=int, default=5,
                   help="stop after N rounds in a row in which the agents gave no usable answer (default 5)")
    p.add_argument("--stop-after-no-keep", type=int, default=10, help="stop after N explorations without a keep (0: never)")
    p.add_argument("--run-dir", help="where outputs go (default runs/TASK-TIMESTAMP)")
    p.add_argument("--fixed", action="append", metavar="KEY=VALUE", help="override a fixed run argument, e.g. time_budget=5")
    p.add_argument("--no-memory", action="store_true", help="run without the experiment memory")
    p.add_argument("--memory-path", help="memory folder (default: shared by every run, under ~/.cache/autosci_graph)")
    p.add_argument("--single-agent", action="store_true", help="run the autoresearch-style single-agent baseline instead")
    p.add_argument("--approve", action="store_true",
                   help="ask at the terminal before each proposal costs compute: approve, reject with a reason, or edit its knobs")
    add_sandbox_flag(p)
    from autosci_graph.cli.cluster import add_cluster_flags

    add_cluster_flags(p)
    p.set_defaults(handler=cmd_run)

    r = sub.add_parser("report", help="write results.tsv, progress.png and report.md for a run directory")
    r.add_argument("run_dir")
    r.add_argument("--html", action="store_true", help="also write a self-contained report.html")
    r.set_defaults(handler=cmd_report)
