"""Forks until the process cap stops it, then fails.

The main process does all the forking (each child only sleeps), so the cap always stops the main
process itself: when every process forked, a child could hit the cap first while the main process
finished its forks and exited cleanly, and the run's verdict depended on scheduling. 4096 forks at
most, a bound in case no cap applies.
"""
import os
import time

print('{"step": 1, "loss": 2.0}', flush=True)
for _ in range(4096):
    if os.fork() == 0:  # raises BlockingIOError in the main process once the run's process cap is reached
        time.sleep(5)
        os._exit(0)
print("---")
print("loss: 1.0")
