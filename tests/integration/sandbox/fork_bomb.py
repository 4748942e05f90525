"""Forks until the process cap stops it: every process forks again, twelve levels deep at most
(4096 processes, a bound in case no cap applies), then waits."""
import os
import time

print('{"step": 1, "loss": 2.0}', flush=True)
for _ in range(12):
    os.fork()  # raises BlockingIOError once the run's process cap is reached
time.sleep(5)
print("---")
print("loss: 1.0")
