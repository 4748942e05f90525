"""Hangs past any budget, with helpers that resist being killed.

Starts a child that ignores SIGTERM (same process group) and a grandchild that ignores SIGTERM
and escapes into its own session with setsid(); writes every pid to ``pids.txt`` in its working
directory, then ignores SIGTERM itself and sleeps forever.
"""
import os
import signal
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
pids = [os.getpid()]
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = os.fork()
    if grandchild == 0:
        os.setsid()  # leaves the run's process group: only the environment marker finds it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    with open("grandchild.pid", "w") as fh:
        fh.write(str(grandchild))
    while True:
        time.sleep(1)
pids.append(child)
for _ in range(100):  # wait for the child to report the grandchild
    if os.path.exists("grandchild.pid") and open("grandchild.pid").read():
        break
    time.sleep(0.02)
pids.append(int(open("grandchild.pid").read()))
with open("pids.txt", "w") as fh:
    fh.write("\n".join(map(str, pids)))
print("started", pids, flush=True)
while True:
    time.sleep(1)
