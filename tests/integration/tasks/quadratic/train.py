"""A toy training run: loss is a bowl in (log lr, log width) plus seed noise. Stdlib only."""
import math
import random
import sys
import time

# -- defaults (overridden by --key=value) --
lr = 1e-3
width = 32
sleep = 0.0
seed = 0

for arg in sys.argv[1:]:
    key, _, value = arg.lstrip("-").partition("=")
    if key in ("lr", "sleep"):
        globals()[key] = float(value)
    elif key in ("width", "seed"):
        globals()[key] = int(value)

time.sleep(sleep)
rng = random.Random(seed)
loss = 1.0 + (math.log10(lr) + 2) ** 2 + 0.05 * (math.log2(width) - 7) ** 2
for step in (1, 2, 3):
    print(f'{{"step": {step}, "loss": {loss + 1.0 / step:.6f}}}')
loss += rng.gauss(0.0, 0.01)
print("---")
print(f"loss: {loss:.6f}")
