"""Allocates 32 MiB at a time, up to 4 GiB, writing every page, past any sensible cap."""
chunks = []
print('{"step": 1, "loss": 2.0}', flush=True)
for _ in range(128):
    chunks.append(bytearray(32 << 20))
print("---")
print("loss: 1.0")
