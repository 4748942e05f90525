"""Writes bytes that are not UTF-8 (on stdout and stderr), then a valid summary block."""
import sys

sys.stdout.buffer.write(b"\xff\xfe\x00\x80 garbage \xc3\x28 \xed\xa0\x80\n")
sys.stderr.buffer.write(b"\x9b\x1b[31m\xfe warning\n")
sys.stdout.buffer.write(bytes(range(256)) + b"\n")
sys.stdout.buffer.write(b"---\nscore: 0.5\n")
sys.stdout.flush()
