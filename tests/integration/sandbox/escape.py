"""A training script that tries to escape, then trains: each attempt is reported, none is fatal.

It reads a planted file by absolute path and through ``~``, connects to a port on 127.0.0.1,
writes a file at an absolute path outside its workspace and prints its whole environment; the
targets come from ``targets.json`` beside it. Then it reports a quadratic loss like any task.
"""
import json
import os
import socket
import sys

opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
lr = float(opts.get("lr", "0.001"))
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets.json")) as fh:
    targets = json.load(fh)
attempts = {}


def attempt(name, fn):
    try:
        attempts[name] = "ok: " + fn()
    except Exception as exc:  # every way of being refused is an answer, not a crash
        attempts[name] = f"refused: {type(exc).__name__}: {exc}"


def read(path):
    with open(path) as fh:
        return fh.read().strip()


def connect():
    with socket.create_connection(("127.0.0.1", targets["port"]), timeout=3) as conn:
        conn.sendall(b"hello from inside the run")
    return "connected"


def write(path):
    with open(path, "w") as fh:
        fh.write("escaped")
    return "written"


attempt("read_absolute", lambda: read(targets["secret_file"]))
attempt("read_home", lambda: read(os.path.expanduser("~/" + targets["secret_name"])))
attempt("connect_loopback", connect)
attempt("write_outside", lambda: write(targets["outside_file"]))
for name, value in sorted(os.environ.items()):
    print(f"ENV {name}={value}")
print("ATTEMPTS " + json.dumps(attempts, sort_keys=True), flush=True)
print("---")
print(f"loss: {(lr - 0.01) ** 2 + 0.5:.6f}")
