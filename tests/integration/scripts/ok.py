"""Behaves: sleeps ``--sleep`` seconds, reports ``score`` = ``--x`` in a summary block."""
import sys
import time

opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
time.sleep(float(opts.get("sleep", 0)))
print('{"step": 1, "loss": 2.0}')
print('{"step": 2, "loss": 1.0}')
print("---")
print(f"score: {float(opts.get('x', 1.0))}")
