"""The README's Python example runs as written (so it cannot rot), and stays short and fast."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def _first_block(lang: str) -> str:
    match = re.search(rf"^```{lang}\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
    assert match, f"README.md has no ```{lang} block"
    return match.group(1)


def test_readme_starts_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[2:6] == [
        "```bash",
        "bash scripts/setup.sh && .venv/bin/autosci run examples/gpt_bpb --teams 2 --slots 2 --max-experiments 40 --deadline 9m",
        "bash scripts/setup.sh && .venv/bin/pytest",
        "```",
    ]


def test_python_example_is_at_most_ten_lines_of_code() -> None:
    code = [line for line in _first_block("python").splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(code) <= 10, code


@pytest.mark.integration
def test_python_example_runs(tmp_path: Path) -> None:
    # Run from a scratch folder that sees the repository's examples, so outputs (runs/) land there.
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "readme_example.py").write_text(_first_block("python"), encoding="utf-8")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "readme_example.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    metric, _, reason = proc.stdout.strip().splitlines()[-1].partition(" ")
    assert 0 < float(metric) < 10 and reason == "experiment budget spent (4)", proc.stdout
    assert len(list((tmp_path / "runs" / "readme" / "experiments").iterdir())) == 4
    assert elapsed < 120, f"the README example took {elapsed:.0f} s; keep it under a minute"
