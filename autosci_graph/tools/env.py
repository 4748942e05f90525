"""The environment a run sees: the caller's, minus secrets, plus its slot and data folder.

A training script is code an agent may have edited; it must not be able to read the API keys of
the process that launched it. Anything that looks like a credential is removed unless the task
lists it in ``pass_env``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from autosci_graph.task import ResearchTask
from autosci_graph.tools.slots import Slot

#: Substrings that mark a variable as secret (matched on the upper-cased name).
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE")
#: Provider variables that hold credentials, or say where to find them, without a marker in
#: their name (``AWS_PROFILE``, ``AZURE_OPENAI_ENDPOINT``, ``GOOGLE_APPLICATION_CREDENTIALS``...).
SECRET_PREFIXES = (
    "AWS_", "AZURE_", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_", "GCP_", "OPENAI_", "ANTHROPIC_",
    "LANGSMITH_", "COHERE_", "MISTRAL_", "GROQ_", "TOGETHER_", "REPLICATE_", "DATABASE_URL", "REDIS_URL",
)
#: Set by the executor for each run, so a run's processes can be found and killed together.
RUN_MARKER = "AUTOSCI_RUN_ID"
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def is_secret(name: str) -> bool:
    """Whether a variable name looks like it holds a credential."""
    upper = name.upper()
    return any(m in upper for m in SECRET_MARKERS) or upper.startswith(SECRET_PREFIXES)


def scrub(env: Mapping[str, str], allow: tuple[str, ...] = ()) -> dict[str, str]:
    """A copy of ``env`` without secrets; names in ``allow`` pass anyway."""
    allowed = set(allow)
    return {k: v for k, v in env.items() if k in allowed or not is_secret(k)}


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
    env = scrub(os.environ if base is None else base, task.pass_env)
    env.pop("AUTOSCI_FINAL_DIR", None)  # held-out data is never shown to a run
    env.update(task.env)
    for var in _THREAD_VARS:
        env[var] = str(slot.threads)
    env["CUDA_VISIBLE_DEVICES"] = slot.gpu.index if slot.gpu is not None else ""
    env["AUTOSCI_DATA_DIR"] = str(data_dir)
    env["AUTOSCI_SLOT"] = slot.label
    env["PYTHONUNBUFFERED"] = "1"  # the log must show progress as it happens, and survive a kill
    env["PYTHONIOENCODING"] = env.get("PYTHONIOENCODING", "utf-8:backslashreplace")
    env[RUN_MARKER] = run_id
    return env
