"""Crashes with a Python traceback after some normal output."""
print('{"step": 1, "loss": 2.0}')


def load_batch(i):
    raise ValueError(f"shape mismatch in batch {i}: expected (32, 128)")


def train():
    for i in range(3):
        load_batch(i)


train()
