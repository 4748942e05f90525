"""
Fitness prediction on the GB1 double-mutant scan, with folds by mutated position.

Train a small PyTorch model over the mutated 55-residue sequence and report the Spearman rank
correlation between predicted and measured fitness on the validation fold. The validation fold's
positions are never mutated in the training set, so the model has to generalize across positions.

    python prepare.py                      # once; writes $AUTOSCI_DATA_DIR/{train,val}.npz
    python train.py                        # default config
    python train.py --arch=cnn --lr=3e-3   # any constant below can be overridden as --key=value

Prints one JSON line per epoch ({"epoch": 3, "train_loss": ..., "val_spearman": ...}) and ends
with a summary block: a line `---` then `name: value` lines.

With --predict_in=X.npz --predict_out=P.npy it also writes its predictions for the `tokens` in
X.npz after training (the harness's held-out evaluation uses this; X holds no labels).
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
# data
data_dir = ""            # defaults to $AUTOSCI_DATA_DIR, then ./data
max_train = 20000        # training variants used (a random subset; the run-time budget)
# model
arch = "local"           # "local": a shared net over the window around each mutation; "cnn": 1D
                         # convolutions (both share weights across positions); "mlp": flattened sequence
encoding = "onehot"      # "onehot", "physchem" (one-hot + hydropathy, volume, charge...) or "embedding" (learned)
emb_dim = 16
width = 128              # hidden units (mlp) or channels (cnn)
depth = 2                # hidden layers (mlp) or conv layers (cnn)
kernel_size = 5          # cnn only
window = 2               # local only: residues each side of a mutation the local net sees
dropout = 0.0
# optimization
epochs = 8
batch_size = 256
lr = 1e-3
weight_decay = 0.0
grad_clip = 1.0
# outputs
predict_in = ""          # npz with `tokens` to predict after training
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
config = {k: globals()[k] for k in _config_keys}

torch.manual_seed(seed)
rng = np.random.default_rng(seed)

# -----------------------------------------------------------------------------
# data
data_path = Path(data_dir or os.environ.get("AUTOSCI_DATA_DIR") or "data")
meta = json.loads((data_path / "meta.json").read_text())
train = np.load(data_path / "train.npz")
val = np.load(data_path / "val.npz")
wt = torch.tensor(["ACDEFGHIKLMNPQRSTVWY".index(c) for c in meta["wild_type"]], dtype=torch.long)
n_aa, seq_len = len(meta["alphabet"]), len(meta["wild_type"])

idx = rng.permutation(len(train["y"]))[:max_train]
x_train = torch.tensor(train["tokens"][idx], dtype=torch.long)
y_train = torch.tensor(train["y"][idx], dtype=torch.float32)
x_val = torch.tensor(val["tokens"], dtype=torch.long)
y_val = val["y"]
y_mean, y_std = y_train.mean(), y_train.std()
y_train = (y_train - y_mean) / y_std  # standardized targets; Spearman does not care about scale


# -----------------------------------------------------------------------------
# model
# residue scales in ALPHABET order (ACDEFGHIKLMNPQRSTVWY): Kyte-Doolittle hydropathy, side-chain
# volume (A^3, Zamyatnin), charge at pH 7, and flags for the backbone-special residues P and G.
HYDROPATHY = [1.8, 2.5, -3.5, -3.5, 2.8, -0.4, -3.2, 4.5, -3.9, 3.8, 1.9, -3.5, -1.6, -3.5, -4.5, -0.8, -0.7, 4.2, -0.9, -1.3]
VOLUME = [88.6, 108.5, 111.1, 138.4, 189.9, 60.1, 153.2, 166.7, 168.6, 166.7, 162.9, 114.1, 112.7, 143.8, 173.4, 89.0, 116.1, 140.0, 227.8, 193.6]
CHARGE = [0, 0, -1, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
SCALES = torch.tensor([[h / 4.5, (v - 140) / 50, c, a == "P", a == "G"]
                       for a, h, v, c in zip("ACDEFGHIKLMNPQRSTVWY", HYDROPATHY, VOLUME, CHARGE)], dtype=torch.float32)


class Encoder(nn.Module):
    """Per-position features: the residue (one-hot or learned) plus a `mutated` flag."""

    def __init__(self):
        super().__init__()
        assert encoding in ("onehot", "physchem", "embedding"), f"unknown encoding {encoding!r}"
        self.emb = nn.Embedding(n_aa, emb_dim) if encoding == "embedding" else None
        self.dim = (emb_dim if self.emb is not None else n_aa + (SCALES.shape[1] if encoding == "physchem" else 0)) + 1

    def forward(self, tokens):  # [B, L] -> [B, L, dim]
        if self.emb is not None:
            res = self.emb(tokens)
        else:
            res = F.one_hot(tokens, n_aa).float()
            if encoding == "physchem":
                res = torch.cat([res, SCALES.to(tokens.device)[tokens]], dim=-1)
        mutated = (tokens != wt.to(tokens.device)).float().unsqueeze(-1)
        return torch.cat([res, mutated], dim=-1)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = Encoder()
        layers, d = [], self.enc.dim * seq_len
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.GELU(), nn.Dropout(dropout)]
            d = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, 1)

    def forward(self, tokens):
        return self.head(self.body(self.enc(tokens).flatten(1))).squeeze(-1)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = Encoder()
        layers, d = [], self.enc.dim
        for _ in range(depth):
            layers += [nn.Conv1d(d, width, kernel_size, padding=kernel_size // 2), nn.GELU(), nn.Dropout(dropout)]
            d = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(2 * d, 1)

    def forward(self, tokens):
        h = self.body(self.enc(tokens).transpose(1, 2))  # [B, C, L]
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=-1)).squeeze(-1)


class Local(nn.Module):
    """Sum of a shared network over each mutation's window (wild-type residue, mutant residue and
    its neighbours), then a nonlinearity: an additive model with global epistasis, as in MAVE-NN."""

    def __init__(self):
        super().__init__()
        self.enc = Encoder()
        self.n_mut = int((x_train != wt).sum(1).max())
        layers, d = [], self.enc.dim * (2 * window + 1) + n_aa
        for i in range(depth):
            layers += [nn.Linear(d, width)] + ([nn.GELU(), nn.Dropout(dropout)] if i < depth - 1 else [])
            d = width
        self.body = nn.Sequential(*layers) if layers else nn.Identity()
        self.head = nn.Sequential(nn.GELU(), nn.Linear(d, 1))

    def forward(self, tokens):
        mutated = tokens != wt.to(tokens.device)
        pos = mutated.float().topk(self.n_mut, dim=1).indices  # [B, M]
        present = mutated.gather(1, pos).float()  # fewer than M mutations -> masked out
        feats = F.pad(self.enc(tokens), (0, 0, window, window))  # zero rows beyond the ends
        offsets = torch.arange(2 * window + 1, device=tokens.device)
        win = feats[torch.arange(len(tokens), device=tokens.device)[:, None, None], pos[..., None] + offsets]
        wt_res = F.one_hot(wt.to(tokens.device)[pos], n_aa).float()
        h = self.body(torch.cat([win.flatten(2), wt_res], dim=-1))  # [B, M, width]
        return self.head((h * present[..., None]).sum(1)).squeeze(-1)


model = {"mlp": MLP, "cnn": CNN, "local": Local}[arch]().to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
steps_per_epoch = math.ceil(len(y_train) / batch_size)
total_steps = epochs * steps_per_epoch
schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / total_steps)))


def spearman(a, b):
    """Spearman rank correlation (Pearson correlation of the ranks; ties broken by order)."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("nan")
    ra = np.empty(len(a)); ra[np.argsort(a, kind="stable")] = np.arange(len(a))
    rb = np.empty(len(b)); rb[np.argsort(b, kind="stable")] = np.arange(len(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@torch.no_grad()
def predict(tokens):
    model.eval()
    out = torch.cat([model(tokens[i:i + 4096].to(device)).cpu() for i in range(0, len(tokens), 4096)])
    model.train()
    return (out * y_std + y_mean).numpy()


# -----------------------------------------------------------------------------
# training
t0 = time.time()
val_spearman = float("nan")
for epoch in range(1, epochs + 1):
    perm = torch.randperm(len(y_train))
    total = 0.0
    for i in range(0, len(perm), batch_size):
        b = perm[i:i + batch_size]
        loss = F.mse_loss(model(x_train[b].to(device)), y_train[b].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        schedule.step()
        total += loss.item() * len(b)
    train_loss = total / len(y_train)
    if not math.isfinite(train_loss):
        val_spearman = float("nan")  # diverged: ranks of NaN predictions would be meaningless
        print(json.dumps({"epoch": epoch, "diverged": 1}), flush=True)
        break
    val_spearman = spearman(predict(x_val), y_val)
    print(json.dumps({"epoch": epoch, "train_loss": round(train_loss, 5), "val_spearman": round(val_spearman, 5)}), flush=True)

if predict_in:
    np.save(predict_out, predict(torch.tensor(np.load(predict_in)["tokens"], dtype=torch.long)))

print("---")
print(f"val_spearman: {val_spearman:.6f}")
print(f"train_loss: {train_loss:.6f}")
print(f"training_seconds: {time.time() - t0:.1f}")
print(f"num_params: {sum(p.numel() for p in model.parameters())}")
print(f"num_train: {len(y_train)}")
