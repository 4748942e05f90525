"""Runs out of memory the way PyTorch reports it on a GPU."""
print('{"step": 1, "loss": 2.0}')
raise MemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
