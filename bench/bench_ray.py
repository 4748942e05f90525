"""Ray executor overhead: N short experiments through RayExecutor vs LocalExecutor, in one run.

A Ray head is started on 127.0.0.1 with as many CPUs as slots (stopped by PID at the end, never
`ray stop`). Both executors run the same script, with the same slots and sandbox; repeats alternate
which goes first. RayExecutor's extra work per experiment: a Ray task (scheduling, a worker
process), the node-side workspace copy from the unpacked bundle, the log and result coming back
through the object store. The first Ray batch (worker processes starting, the bundle unpacked) is
timed on its own, as the cold start, and kept out of the ratio.

    .venv/bin/python -m bench.bench_ray [--n 24] [--slots 2] [--sleep 0.1] [--repeats 5]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from autosci_graph.state import Change, RunRequest
from autosci_graph.task import ResearchTask
from autosci_graph.tools.ray import RayExecutor
from bench._report import markdown_table, write_section
from bench.bench_executor import alternate, make_task, parse_overhead_args, run_executor
from tests.support.servers import RayCluster


def run_ray(task: ResearchTask, work: Path, n: int, slots: int, address: str) -> float:
    with RayExecutor(task, work, address=address, slots=slots, device="cpu") as ex:
        t0 = time.perf_counter()
        results = ex.run_many([RunRequest(experiment_id=f"e{i}", change=Change(knobs={"x": float(i)})) for i in range(n)])
        elapsed = time.perf_counter() - t0
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert all(r.provenance and "(ray node " in r.provenance.node for r in results)
    return elapsed


def main() -> None:
    import ray

    args = parse_overhead_args(__doc__ or "")
    cluster = RayCluster(head_cpus=args.slots)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            task = make_task(Path(tmp) / "task", args.sleep)
            cold = run_ray(task, Path(tmp) / "cold", args.slots, args.slots, cluster.address)
            rows, ratio = alternate(args.repeats, args.n,
                                    lambda r: run_executor(task, Path(tmp) / f"local{r}", args.n, args.slots),
                                    lambda r: run_ray(task, Path(tmp) / f"ray{r}", args.n, args.slots, cluster.address))
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()
    per_run_ms = sorted(row[4] for row in rows)[len(rows) // 2]  # type: ignore[type-var]
    body = (
        f"{args.n} experiments of a script that sleeps {args.sleep} s and prints 20 JSON lines and a summary block, "
        f"on {args.slots} slots, through `LocalExecutor` and through `RayExecutor` on a Ray head started on 127.0.0.1 "
        f"with {args.slots} CPUs (each experiment a Ray task asking for `num_cpus=1`; the same bubblewrap sandbox on both "
        "sides). Repeats alternate which side goes first; the figure is the median ratio of wall-clock times. The first "
        f"Ray batch ({args.slots} experiments: Ray's worker processes start, the task bundle is unpacked on the node) "
        f"took {cold:.2f} s and is not in the ratio. Single repeats are noisy on a loaded machine (the load is on the Machine line).\n\n"
        + markdown_table(["repeat", "local (s)", "ray (s)", "ratio", "overhead per experiment (ms)"], rows)
        + "\n\nGPU slots (`num_gpus=1`): no GPU machine was lent to this session, so no experiment ran on a card. The "
        "request itself is checked by `tests/integration/test_executor.py::test_ray_gpu_slot_asks_ray_for_one_gpu_and_the_run_gets_it` "
        "against a head that declares one GPU to Ray: the task is scheduled on it and the run gets "
        "`CUDA_VISIBLE_DEVICES=0` from Ray."
    )
    write_section(
        "ray",
        "Ray executor overhead",
        body,
        {"ray executor overhead ratio": round(ratio, 3), "ray overhead per experiment (ms, median)": round(float(per_run_ms), 1),
         "ray cold start (s)": round(cold, 2)},
        f".venv/bin/python -m bench.bench_ray {args.flags}",
    )


if __name__ == "__main__":
    main()
