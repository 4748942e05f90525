"""
Fitness prediction on a deep mutational scan, with folds by mutated position (ProteinGym's).

Train a small PyTorch model and report ProteinGym's scores on held-out positions: Spearman (the
metric to improve), NDCG and recall of the top 10%. With validation="cv" (the default) each of the
four folds the harness does not keep for its test is scored in turn by a model trained on the other
three, and the scores are averaged; with validation="fold" one model trains on folds 2-4 and fold 1
scores it (four times faster, and a choice tuned on one fold's few positions often fails on
others). Scored positions are never mutated in training, so the model has to generalize across
positions: from which residue is replaced by which, and the residues around it.

    python prepare.py                          # once; writes $AUTOSCI_DATA_DIR/<assay>/<split>/...
    python train.py                            # default config, GB1
    python train.py --assay=tdp43 --lr=3e-3    # any constant below can be overridden as --key=value

Prints one JSON line per evaluation ({"fold": 2, "step": 300, "train_loss": ..., "fold_spearman": ...})
and ends with a summary block: a line `---` then `name: value` lines (val_* are means over folds).

With --predict_in=X.npz --predict_out=P.npy it also writes its predictions for the `tokens` in
X.npz after training: the mean over the folds' models (the harness's held-out evaluation uses
this; X holds no labels).
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

from fitness_metrics import scores

# -----------------------------------------------------------------------------
# config: every name here can be overridden with --name=value
seed = 0
# data
data_dir = ""            # defaults to $AUTOSCI_DATA_DIR, then ./data
assay = "gb1"            # "gb1", "tdp43" or "abeta" (see prepare.py)
split = "modulo"         # "modulo", "contiguous" (position folds) or "random" (variant folds; too easy)
max_train = 20000        # training variants used per model (a random subset; the run-time budget)
validation = "cv"        # "cv": mean over the four non-test folds, each scored by a model trained on
                         # the other three; "fold": fold 1 only, one model trained on folds 2-4
# model
arch = "local"           # "local": a shared net over the window around each mutation, summed, then a
                         # global-epistasis nonlinearity; "cnn": 1D convolutions over the whole sequence
encoding = "onehot"      # "onehot" or "physchem" (one-hot + hydropathy, volume, charge, P/G flags)
width = 64               # hidden units (local) or channels (cnn)
depth = 1                # hidden layers of the per-mutation net (local; 0 = linear) or conv layers (cnn)
kernel_size = 5          # cnn only
window = 0               # local only: residues each side of a mutation the local net sees
dropout = 0.0
# optimization
steps = 600              # optimizer steps (the learning rate decays by cosine to 10% over them)
batch_size = 256
lr = 3e-3
weight_decay = 0.0
grad_clip = 1.0
eval_every = 200
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
meta = json.loads((data_path / assay / "meta.json").read_text())
parts = [np.load(data_path / assay / split / f"{name}.npz") for name in ("train", "val")]
tokens_all = torch.tensor(np.concatenate([p["tokens"] for p in parts]), dtype=torch.long)
y_all = np.concatenate([p["y"] for p in parts])
fold_all = np.concatenate([p["fold"] for p in parts])
ALPHABET = meta["alphabet"]
wt = torch.tensor([ALPHABET.index(c) for c in meta["wild_type"]], dtype=torch.long)
n_aa, seq_len = len(ALPHABET), len(meta["wild_type"])
n_mut = int((tokens_all != wt).sum(1).max())  # mutations per variant, at most
assert validation in ("cv", "fold"), f"unknown validation {validation!r}: use 'cv' or 'fold'"
val_folds = sorted(set(fold_all.tolist())) if validation == "cv" else [meta["val_fold"]]


# -----------------------------------------------------------------------------
# model
# residue scales in ALPHABET order (ACDEFGHIKLMNPQRSTVWY*): Kyte-Doolittle hydropathy, side-chain
# volume (A^3, Zamyatnin), charge at pH 7, and flags for the backbone-special residues P and G.
# A stop codon (*) gets zeros: it has no side chain; its one-hot column tells it apart.
HYDROPATHY = [1.8, 2.5, -3.5, -3.5, 2.8, -0.4, -3.2, 4.5, -3.9, 3.8, 1.9, -3.5, -1.6, -3.5, -4.5, -0.8, -0.7, 4.2, -0.9, -1.3, 0.0]
VOLUME = [88.6, 108.5, 111.1, 138.4, 189.9, 60.1, 153.2, 166.7, 168.6, 166.7, 162.9, 114.1, 112.7, 143.8, 173.4, 89.0, 116.1, 140.0, 227.8, 193.6, 140.0]
CHARGE = [0, 0, -1, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
SCALES = torch.tensor([[h / 4.5, (v - 140) / 50, c, a == "P", a == "G"]
                       for a, h, v, c in zip("ACDEFGHIKLMNPQRSTVWY*", HYDROPATHY, VOLUME, CHARGE)], dtype=torch.float32)


class Encoder(nn.Module):
    """Per-position features: the residue (one-hot, optionally with scales) plus a `mutated` flag."""

    def __init__(self):
        super().__init__()
        assert encoding in ("onehot", "physchem"), f"unknown encoding {encoding!r}"
        self.dim = n_aa + (SCALES.shape[1] if encoding == "physchem" else 0) + 1

    def forward(self, tokens):  # [B, L] -> [B, L, dim]
        res = F.one_hot(tokens, n_aa).float()
        if encoding == "physchem":
            res = torch.cat([res, SCALES.to(tokens.device)[tokens]], dim=-1)
        mutated = (tokens != wt.to(tokens.device)).float().unsqueeze(-1)
        return torch.cat([res, mutated], dim=-1)


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
    its neighbours), then a nonlinearity: an additive model with global epistasis, as in MAVE-NN.
    The weights are shared across positions, so they carry over to the positions of other folds."""

    def __init__(self):
        super().__init__()
        self.enc = Encoder()
        self.n_mut = n_mut
        layers, d = [], self.enc.dim * (2 * window + 1) + n_aa
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.GELU(), nn.Dropout(dropout)]
            d = width
        self.body = nn.Sequential(*layers, nn.Linear(d, width))
        # The wild-type residue's weights start at zero. A residue that is wild type at no training
        # position never gets a gradient there, so random initial weights would set the predictions
        # at the held-out positions where it is wild type (gb1's W43 in validation): seed noise of
        # 0.05 in validation Spearman. At zero, an unseen wild type adds nothing.
        with torch.no_grad():
            self.body[0].weight[:, -n_aa:] = 0.0
        self.head = nn.Sequential(nn.GELU(), nn.Linear(width, 1))

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


def build():
    """A freshly initialized model (each validation fold trains its own)."""
    return {"cnn": CNN, "local": Local}[arch]().to(device)


def loss_of(model, tokens, target):
    """The training loss of one minibatch (targets standardized)."""
    return F.mse_loss(model(tokens), target)


@torch.no_grad()
def predict(model, tokens, y_mean, y_std):
    model.eval()
    out = torch.cat([model(tokens[i:i + 4096].to(device)).cpu() for i in range(0, len(tokens), 4096)])
    model.train()
    return (out * y_std + y_mean).numpy()


def batches(n):
    """Endless shuffled minibatches of n training variants."""
    while True:
        perm = torch.randperm(n)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield perm[i:i + batch_size]


def fit(fold):
    """Train on every fold but `fold`, score `fold`: (model, its scores, its target scale, train loss)."""
    idx = rng.permutation(np.flatnonzero(fold_all != fold))[:max_train]
    x_train, y_train = tokens_all[idx], torch.tensor(y_all[idx], dtype=torch.float32)
    x_val, y_val = tokens_all[fold_all == fold], y_all[fold_all == fold]
    y_mean, y_std = y_train.mean(), y_train.std()
    y_train = (y_train - y_mean) / y_std  # standardized targets; Spearman does not care about scale
    model = build()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    metrics, train_loss = {"val_spearman": float("nan")}, float("nan")
    total, seen = 0.0, 0
    for step, b in zip(range(1, steps + 1), batches(len(y_train))):
        loss = loss_of(model, x_train[b].to(device), y_train[b].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        schedule.step()
        total, seen = total + loss.item() * len(b), seen + len(b)
        if step % eval_every == 0 or step == steps:
            train_loss, total, seen = total / seen, 0.0, 0
            if not math.isfinite(train_loss):
                print(json.dumps({"fold": fold, "step": step, "diverged": 1}), flush=True)
                return model, {"val_spearman": float("nan")}, (y_mean, y_std), train_loss
            metrics = scores(predict(model, x_val, y_mean, y_std), y_val, "val")
            print(json.dumps({"fold": fold, "step": step, "train_loss": round(train_loss, 5),
                              **{k.replace("val_", "fold_"): round(v, 5) for k, v in metrics.items()}}), flush=True)
    return model, metrics, (y_mean, y_std), train_loss


# -----------------------------------------------------------------------------
# training: one model per validation fold; a diverged fold leaves the metrics NaN
t0 = time.time()
fits = []
for fold in val_folds:
    fits.append(fit(fold))
    if not math.isfinite(fits[-1][1]["val_spearman"]):
        break
metrics = {k: float(np.mean([f[1].get(k, float("nan")) for f in fits])) for k in ("val_spearman", "val_ndcg10", "val_recall10")}

if predict_in:
    tokens = torch.tensor(np.load(predict_in)["tokens"], dtype=torch.long)
    np.save(predict_out, np.mean([predict(m, tokens, *scale) for m, _, scale, _ in fits], axis=0))

print("---")
print(f"val_spearman: {metrics['val_spearman']:.6f}")
print(f"val_ndcg10: {metrics['val_ndcg10']:.6f}")
print(f"val_recall10: {metrics['val_recall10']:.6f}")
print(f"train_loss: {np.mean([f[3] for f in fits]):.6f}")
print(f"training_seconds: {time.time() - t0:.1f}")
print(f"num_params: {sum(p.numel() for p in fits[0][0].parameters())}")
print(f"num_train: {min(max_train, int((fold_all != val_folds[0]).sum()))}")
print(f"val_folds: {len(fits)}")
