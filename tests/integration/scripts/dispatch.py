"""Entry point of the misbehaving-scripts task: ``--script=NAME`` picks which script runs.

``os.execv`` replaces this process, so the chosen script is the run's main process, exactly as if
the task's command had named it.
"""
import os
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--script=")]
script = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--script=")), "ok.py")
here = os.path.dirname(os.path.abspath(__file__))
os.execv(sys.executable, [sys.executable, os.path.join(here, script), *args])
