"""The environment a run sees: a short allow-list of the caller's, plus its slot and data folder.

A training script is code an agent may have edited; it must not see the credentials of the process
that launched it, whatever their names (``SLACK_WEBHOOK_URL``, ``NOTES``, an internal URL...). So
nothing passes unless it is on the allow-list below or the task names it in ``pass_env``; the
task's own ``env`` values are added on top. Provenance records the names a run was given, never
the values.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from autosci_graph.task import ResearchTask
from autosci_graph.tools.slots import Slot

#: Set by the executor for each run, so a run's processes can be found and killed together.
RUN_MARKER = "AUTOSCI_RUN_ID"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
#: Variables of the caller every run gets: the search path, the home folder (an empty one in the
#: sandbox), locale and time zone, the thread counts, and the dynamic-library path CUDA installs use.
SAFE_NAMES = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH", *THREAD_VARS})
#: Prefixes of the caller's variables every run gets: locale, CUDA settings, this project's own.
SAFE_PREFIXES = ("LC_", "CUDA_", "AUTOSCI_")
#: Never shown to a run, even with a safe prefix: held-out data is the harness's alone.
WITHHELD = frozenset({"AUTOSCI_FINAL_DIR"})


def is_allowed(name: str, pass_env: Iterable[str] = ()) -> bool:
    """Whether a variable of the caller may reach a run."""
    if name in WITHHELD:
        return False
    return name in SAFE_NAMES or name.startswith(SAFE_PREFIXES) or name in set(pass_env)


def allowed_env(env: Mapping[str, str], pass_env: Iterable[str] = ()) -> dict[str, str]:
    """The allow-listed part of ``env`` (the safe names, and those in ``pass_env``)."""
    passed = set(pass_env)
    return {k: v for k, v in env.items() if is_allowed(k, passed)}


def build_run_env(
    task: ResearchTask,
    slot: Slot,
    *,
    run_id: str,
    data_dir: Path,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full environment of one run (``base`` defaults to this process's environment).

    A CPU slot gets ``CUDA_VISIBLE_DEVICES=""``: on a GPU machine a CPU run must not grab a GPU
    another slot owns.
    """
    env = allowed_env(os.environ if base is None else base, task.pass_env)
    env.update(task.env)
    for var in THREAD_VARS:
        env[var] = str(slot.threads)
    env["CUDA_VISIBLE_DEVICES"] = slot.gpu.index if slot.gpu is not None else ""
    env["AUTOSCI_DATA_DIR"] = str(data_dir)
    env["AUTOSCI_SLOT"] = slot.label
    env["PYTHONUNBUFFERED"] = "1"  # the log must show progress as it happens, and survive a kill
    env["PYTHONIOENCODING"] = env.get("PYTHONIOENCODING", "utf-8:backslashreplace")
    env[RUN_MARKER] = run_id
    return env
