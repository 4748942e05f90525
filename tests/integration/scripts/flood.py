"""Prints 50 MB of output, then a summary block (which must still be found)."""
import sys

line = ("x" * 1023 + "\n").encode()
out = sys.stdout.buffer
for _ in range(50 * 1024):
    out.write(line)
out.write(b"---\nscore: 0.25\n")
out.flush()
