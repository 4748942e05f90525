"""``autosci memory query|stats|export|import``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autosci_graph.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "memory"
    assert main(["memory", "import", str(FIXTURES / "memory_records.jsonl"), "--path", str(path)]) == 0
    return path


def test_import_then_query_prints_a_table(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rc = main(["memory", "query", "GPU ran out of memory", "--path", str(store), "--task", "gpt-bpb", "--status", "oom", "--k", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "2 most similar experiments" in out  # only two gpt-bpb runs ran out of memory
    assert "bs-oom" in out and "seq-len-oom" in out and "sol-bits-oom" not in out


def test_stats(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["memory", "stats", "--path", str(store)]) == 0
    out = capsys.readouterr().out
    assert "36 experiments" in out and "gpt-bpb" in out and "all-MiniLM-L6-v2" in out
    assert main(["memory", "stats", "--path", str(store), "--task", "solubility-rmse"]) == 0
    assert "7 experiments" in capsys.readouterr().out


def test_export_round_trips(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "out.jsonl"
    assert main(["memory", "export", str(out_file), "--path", str(store), "--task", "gb1-fitness"]) == 0
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 8 and {r["task"] for r in rows} == {"gb1-fitness"}
    # Importing the same records again changes nothing (upserts by id).
    assert main(["memory", "import", str(out_file), "--path", str(store)]) == 0
    assert "now holds 36" in capsys.readouterr().out


def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["memory", "query", "x", "--path", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autosci: error: [INVALID_SETTINGS] no experiment memory at") and err.count("\n") == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "t"}\n')
    assert main(["memory", "import", str(bad), "--path", str(tmp_path / "m")]) == 2
    assert "bad.jsonl, line 1: not a memory record" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "chroma.sqlite3").write_bytes(b"junk" * 100)
    assert main(["memory", "stats", "--path", str(corrupt)]) == 2
    assert "[MEMORY_CORRUPT]" in capsys.readouterr().err
    assert main(["memory", "stats", "--host", "127.0.0.1", "--port", "9"]) == 2
    assert "127.0.0.1:9" in capsys.readouterr().err
