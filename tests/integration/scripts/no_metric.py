"""Exits cleanly without ever reporting the metric."""
print("training...")
print('{"step": 1, "loss": 2.0}')
print("---")
print("other_number: 3.0")
print("done")
