"""Diverges: the loss becomes NaN and the summary block reports a NaN score."""
print('{"step": 1, "loss": 2.5}')
print('{"step": 2, "loss": 7e10}')
print('{"step": 3, "loss": NaN}')
print("---")
print("score: nan")
