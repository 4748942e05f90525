"""Prints its whole environment (to check that no secret reached it), then a metric."""
import os

for name, value in sorted(os.environ.items()):
    print(f"ENV {name}={value}")
print("---")
print("score: 1.0")
