"""Reports its metric and exits, leaving a daemon behind (setsid, ignores TERM) that holds the
output pipe open. The run must still end, as ok, and the daemon must not survive it."""
import os
import signal
import time

if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open("daemon.pid", "w") as fh:
        fh.write(str(os.getpid()))
    while True:
        time.sleep(1)
while not os.path.exists("daemon.pid") or not open("daemon.pid").read():
    time.sleep(0.01)
print("---")
print("score: 0.125")
