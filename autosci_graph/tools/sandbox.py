"""Contain a run: its workspace, its data and a read-only system; nothing else.

A training script is code an agent may have written. With bubblewrap (``bwrap``, Debian package
``bubblewrap``) each run starts in a fresh mount, PID and network namespace where it sees:

* the system (``/usr``, ``/etc``, the ``/bin``/``/lib`` links), read-only;
* the Python that runs it (``sys.prefix`` and ``sys.base_prefix``), read-only;
* the task's prepared data, and whatever else the caller names, read-only;
* its own workspace, writable, as its working directory;
* a private, empty ``/tmp`` and an empty home (``$HOME``, ``/root`` and ``/home`` are tmpfs);
* ``/proc`` of its own PID namespace, a minimal ``/dev`` (plus ``/dev/nvidia*`` on a GPU slot),
  ``/sys`` read-only;
* no network, not even loopback, unless the task says ``network = true``.

Every other path (the user's files, the project checkout, other runs) does not exist inside.
``--sandbox none`` runs the command as it is; the report then says so.

Example::

    sandbox = make_sandbox("auto")   # raises SandboxError naming `apt-get install bubblewrap`
    argv = sandbox.wrap(["python", "train.py"], workspace=ws, readonly=[data_dir])
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autosci_graph.errors import AutosciError, ErrorCode
from autosci_graph.tools.limits import ResourceLimits
from autosci_graph.tools.process import ManagedProcess

log = logging.getLogger(__name__)

SandboxMode = Literal["auto", "bwrap", "none"]
SANDBOX_MODES: tuple[SandboxMode, ...] = ("auto", "bwrap", "none")
INSTALL_HINT = "apt-get install bubblewrap"
#: The read-only system every run sees (those that exist; symbolic links are recreated as links).
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
#: Always an empty tmpfs inside, whatever ``$HOME`` says.
HIDDEN_HOMES = ("/root", "/home")


class SandboxError(AutosciError):
    """The sandbox a run needs cannot be set up on this machine."""

    code = ErrorCode.SANDBOX_UNAVAILABLE


def python_paths() -> list[Path]:
    """The installation folders of the interpreter running autosci (the venv and its base)."""
    found = [sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))]
    return [Path(p) for p in dict.fromkeys(found) if p]


def gpu_devices() -> list[str]:
    """``/dev/nvidia*`` (``nvidia0``, ``nvidiactl``, ``nvidia-uvm``, ``nvidia-caps``...) present here."""
    return sorted(glob.glob("/dev/nvidia*"))


def _covered(path: str, by: Iterable[str]) -> bool:
    return any(path == b or path.startswith(b.rstrip("/") + "/") for b in by)


def bwrap_command(
    bwrap: str,
    argv: Sequence[str],
    *,
    workspace: Path,
    readonly: Sequence[Path] = (),
    network: bool = False,
    home: str | None = None,
    devices: Sequence[str] = (),
    system: Sequence[str] = SYSTEM_PATHS,
) -> list[str]:
    """The bubblewrap command line that runs ``argv`` contained (see the module docstring).

    Mount order matters: later mounts land on top of earlier ones, so the private ``/tmp`` and
    homes come first and the read-only folders and the workspace (which may lie under them) after.
    """
    cmd = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        cmd.append("--unshare-net")
    bound: list[str] = []
    for p in system:
        if os.path.islink(p):
            cmd += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            cmd += ["--ro-bind", p, p]
            bound.append(p)
    cmd += ["--proc", "/proc", "--dev", "/dev", "--ro-bind-try", "/sys", "/sys"]
    for dev in devices:
        cmd += ["--dev-bind", dev, dev]
    cmd += ["--tmpfs", "/tmp"]
    for h in dict.fromkeys([*HIDDEN_HOMES, *([home] if home and home != "/" else [])]):
        if h in HIDDEN_HOMES or not _covered(h, ["/tmp", *HIDDEN_HOMES]):
            cmd += ["--tmpfs", h]
        else:  # a home under /tmp or /root: an empty folder in the tmpfs already hides it
            cmd += ["--dir", h]
    for folder in readonly:
        real = os.path.realpath(folder)
        if not os.path.exists(real) or _covered(real, bound):
            continue
        cmd += ["--ro-bind", real, real]
        bound.append(real)
        if str(folder) != real and not _covered(str(folder), bound):
            cmd += ["--symlink", real, str(folder)]
    ws = os.path.realpath(workspace)
    cmd += ["--bind", ws, ws, "--chdir", ws, "--remount-ro", "/", "--", *argv]
    return cmd


@dataclass(frozen=True)
class Sandbox:
    """How runs are contained: ``"bwrap"`` or ``"none"``. Build one with :func:`make_sandbox`."""

    kind: Literal["bwrap", "none"]
    #: Whether runs may open network connections (always true without a sandbox).
    network: bool = False
    bwrap: str | None = None

    @property
    def contained(self) -> bool:
        return self.kind == "bwrap"

    def wrap(self, argv: Sequence[str], *, workspace: Path, readonly: Sequence[Path] = (), gpu: bool = False,
             home: str | None = None) -> list[str]:
        """``argv`` as it must be launched: unchanged without a sandbox, else inside bubblewrap.

        ``gpu`` binds ``/dev/nvidia*`` (a GPU slot); ``home`` is the ``$HOME`` the run is given,
        an empty tmpfs inside.
        """
        if not self.contained:
            return list(argv)
        assert self.bwrap is not None
        return bwrap_command(self.bwrap, argv, workspace=workspace, readonly=[*python_paths(), *readonly],
                             network=self.network, home=home, devices=gpu_devices() if gpu else ())

    def process(self, argv: Sequence[str], *, workspace: Path, env: Mapping[str, str], readonly: Sequence[Path] = (),
                gpu: bool = False, limits: ResourceLimits | None = None, **kwargs: object) -> ManagedProcess:
        """A :class:`ManagedProcess` running ``argv`` in ``workspace``, contained and capped.

        ``kwargs`` go to :class:`ManagedProcess` (``timeout``, ``log_path``, ``max_log_bytes``...).
        """
        wrapped = self.wrap(argv, workspace=workspace, readonly=readonly, gpu=gpu, home=env.get("HOME"))
        return ManagedProcess(wrapped, cwd=workspace, env=env, limits=limits, wrapped=self.contained, **kwargs)  # type: ignore[arg-type]

    def describe(self) -> str:
        """One line for logs and reports."""
        if not self.contained:
            return "no sandbox (--sandbox none): runs see the user's files and the network"
        return "bubblewrap sandbox, " + ("network on (task.toml network = true)" if self.network else "no network")


@functools.lru_cache(maxsize=4)
def _probe(bwrap: str, network: bool) -> str | None:
    """Why bubblewrap cannot run a contained Python here, or None when it can."""
    with tempfile.TemporaryDirectory(prefix="autosci-sandbox-probe-") as ws:
        argv = bwrap_command(bwrap, [sys.executable, "-c", "pass"], workspace=Path(ws),
                             readonly=python_paths(), network=network)
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    return None if out.returncode == 0 else (out.stderr.strip() or f"exit status {out.returncode}")


def make_sandbox(mode: SandboxMode = "auto", *, network: bool = False) -> Sandbox:
    """The sandbox for ``mode``, checked to work on this machine.

    ``auto`` and ``bwrap`` both need bubblewrap (``auto`` is the default and may one day pick
    another mechanism); ``none`` opts out. Raises :class:`SandboxError` with the install command
    when bubblewrap is missing, or bubblewrap's own message when the kernel refuses it.
    """
    if mode not in SANDBOX_MODES:
        raise SandboxError(f"sandbox {mode!r}: expected one of {', '.join(SANDBOX_MODES)}")
    if mode == "none":
        log.warning("runs are NOT sandboxed (--sandbox none): they can read the user's files and use the network")
        return Sandbox("none", network=True)
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxError(
            "runs are sandboxed with bubblewrap, which is not installed; install it (`sudo "
            f"{INSTALL_HINT}` on Debian/Ubuntu, `dnf install bubblewrap` on Fedora) or, to run "
            "LLM-written code unsandboxed, pass --sandbox none (sandbox='none')"
        )
    problem = _probe(bwrap, network)
    if problem is not None:
        raise SandboxError(
            f"bubblewrap ({bwrap}) cannot start a sandbox here: {problem}. On Ubuntu 24.04 allow unprivileged "
            "user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=0), or pass --sandbox none"
        )
    return Sandbox("bwrap", network=network, bwrap=bwrap)


def sandbox_or_none(sandbox: Sandbox | None, *, network: bool = False) -> Sandbox:
    """``sandbox``, or when the caller has none to give (a smoke check, a final evaluation called
    on its own) bubblewrap if it works here, else no sandbox, with a warning."""
    if sandbox is not None:
        return sandbox
    try:
        return make_sandbox("auto", network=network)
    except SandboxError as exc:
        log.warning("running unsandboxed: %s", exc)
        return Sandbox("none", network=True)


def package_path() -> Path:
    """The ``autosci_graph`` package folder, for commands of the harness that import it."""
    return Path(__file__).resolve().parents[1]


__all__ = ["INSTALL_HINT", "SANDBOX_MODES", "Sandbox", "SandboxError", "SandboxMode", "bwrap_command", "make_sandbox", "package_path", "sandbox_or_none"]
