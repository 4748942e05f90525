"""A byte-level GPT trained for a fixed budget; reports validation bits per byte (val_bpb).

nanoGPT style: the configuration is the constants below; any of them can be overridden on the
command line as ``--key=value``. Training stops at ``time_budget`` seconds of wall clock (the
default, as autoresearch does) or after ``max_steps`` steps if that is set, whichever comes first;
with ``max_steps`` and ``time_budget=0`` on CPU a run is exactly repeatable for a given seed.

Data: ``train.bin`` / ``val.bin`` (raw bytes) in ``$AUTOSCI_DATA_DIR``, written by prepare.py.
Output: JSON lines of the learning curve, then a summary block (``---`` and ``name: value``).
With ``--score_file=path`` the trained model also scores that file the same way as the validation
split and reports ``score_bpb`` (how the harness's final evaluation measures held-out text).

    python train.py --seed=1 --lr=3e-3 --time_budget=10
"""

import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

T0 = time.time()

# -----------------------------------------------------------------------------
# configuration (override with --key=value)
seed = 0
time_budget = 15.0  # seconds of training; 0 means no time limit (then set max_steps)
max_steps = 0  # stop after this many optimizer steps; 0 means no step limit
# model
n_layer = 2
n_head = 4
n_embd = 64  # rounded up to a multiple of n_head
block_size = 64  # context length in bytes
dropout = 0.0
# optimization
batch_size = 16
lr = 3e-4  # peak learning rate (AdamW)
warmup_steps = 20
weight_decay = 0.0
min_lr_frac = 0.1  # the schedule decays (cosine) to lr * min_lr_frac at the end of the budget
grad_clip = 1.0
# evaluation and logging
eval_bytes = 32768  # bytes of the validation split scored at the end, in evenly spaced windows
log_interval = 25
device = "auto"  # auto | cpu | cuda
score_file = ""  # if set, also score this raw-byte file after training (the harness's held-out test)
# -----------------------------------------------------------------------------


def apply_overrides(argv):
    """``--key=value`` for any constant above; the value takes the constant's type."""
    config = globals()
    for arg in argv:
        if not arg.startswith("--") or "=" not in arg:
            sys.exit(f"train.py: expected --key=value, got {arg!r}")
        key, value = arg[2:].split("=", 1)
        if key not in config or key.startswith("_") or not isinstance(config[key], (bool, int, float, str)):
            sys.exit(f"train.py: unknown setting {key!r}")
        kind = type(config[key])
        if kind is bool:
            config[key] = value.lower() in ("1", "true", "yes")
        elif kind is int:
            config[key] = int(float(value))
        else:
            config[key] = kind(value)


apply_overrides(sys.argv[1:])
n_embd = -(-n_embd // n_head) * n_head
if time_budget <= 0 and max_steps <= 0:
    sys.exit("train.py: set time_budget > 0 or max_steps > 0, or training never ends")

torch.manual_seed(seed)
if device == "auto":
    device = "cuda" if torch.cuda.is_available() else "cpu"
if device == "cpu":
    # One slot, one share of the cores: the executor says how many threads through OMP_NUM_THREADS.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    autocast = torch.autocast("cpu", enabled=False)
else:
    torch.backends.cuda.matmul.allow_tf32 = True
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)

data_dir = os.environ.get("AUTOSCI_DATA_DIR", "data")


def load(name):
    with open(os.path.join(data_dir, name), "rb") as fh:
        return torch.frombuffer(bytearray(fh.read()), dtype=torch.uint8).long()


train_data, val_data = load("train.bin"), load("val.bin")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.ln2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.drop(self.mlp(self.ln2(x)))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(256, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList(Block() for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.drop = nn.Dropout(dropout)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        x = self.drop(self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device)))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.tok.weight.T  # tied input/output embedding
        return F.cross_entropy(logits.float().view(-1, 256), targets.reshape(-1), reduction="sum")


model = GPT().to(device)
n_params = sum(p.numel() for p in model.parameters())
decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
optimizer = torch.optim.AdamW(
    [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
    lr=lr, betas=(0.9, 0.95), **({"fused": True} if device == "cuda" else {}),
)
gen = torch.Generator().manual_seed(seed)  # data order depends on the seed only


def get_batch():
    ix = torch.randint(len(train_data) - block_size - 1, (batch_size,), generator=gen)
    x = torch.stack([train_data[i : i + block_size] for i in ix])
    y = torch.stack([train_data[i + 1 : i + 1 + block_size] for i in ix])
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def lr_at(step, progress):
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    return lr * (min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


@torch.no_grad()
def evaluate(data):
    """Bits per byte over ``eval_bytes`` of ``data``, in non-overlapping windows spread evenly
    over it (the same bytes for every configuration with the same block_size)."""
    model.eval()
    n_windows = max(1, eval_bytes // block_size)
    stride = (len(data) - block_size - 1) / max(1, n_windows - 1)
    starts = [int(i * stride) for i in range(n_windows)]
    nats, count = 0.0, 0
    for b in range(0, n_windows, 64):
        ix = starts[b : b + 64]
        x = torch.stack([data[i : i + block_size] for i in ix]).to(device)
        y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix]).to(device)
        with autocast:
            nats += model(x, y).item()
        count += y.numel()
    model.train()
    return nats / (math.log(2) * count), count


print(json.dumps({"event": "start", "params": n_params, "n_embd": n_embd, "device_cuda": int(device == "cuda")}), flush=True)
t_train = time.time()
step, train_loss, tokens = 0, float("nan"), 0
while True:
    elapsed = time.time() - t_train
    if (max_steps and step >= max_steps) or (time_budget > 0 and elapsed >= time_budget):
        break
    progress = max(step / max_steps if max_steps else 0.0, elapsed / time_budget if time_budget > 0 else 0.0)
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, progress)
    x, y = get_batch()
    with autocast:
        loss = model(x, y) / y.numel()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    step += 1
    tokens += y.numel()
    if step % log_interval == 0 or step == 1:
        train_loss = loss.item()
        if not math.isfinite(train_loss):
            print(f"diverged: loss is {train_loss} at step {step}", flush=True)
            print(f"---\nval_bpb: nan\nsteps: {step}")
            sys.exit(1)
        print(json.dumps({"step": step, "train_loss": round(train_loss, 5), "train_bpb": round(train_loss / math.log(2), 5), "lr": optimizer.param_groups[0]["lr"], "elapsed": round(time.time() - t_train, 3)}), flush=True)

training_seconds = time.time() - t_train
train_loss = loss.item() if step else float("nan")
if not math.isfinite(train_loss):
    print(f"diverged: loss is {train_loss} at step {step}", flush=True)
    print(f"---\nval_bpb: nan\nsteps: {step}")
    sys.exit(1)
val_bpb, eval_count = evaluate(val_data)
print(json.dumps({"step": step, "val_bpb": round(val_bpb, 6)}), flush=True)
if score_file:
    with open(score_file, "rb") as fh:
        score_bpb, _ = evaluate(torch.frombuffer(bytearray(fh.read()), dtype=torch.uint8).long())
print("---")
print(f"val_bpb: {val_bpb:.6f}")
if score_file:
    print(f"score_bpb: {score_bpb:.6f}")
print(f"train_loss: {train_loss:.6f}")
print(f"steps: {step}")
print(f"tokens_seen: {tokens}")
print(f"params: {n_params}")
print(f"eval_bytes: {eval_count}")
print(f"training_seconds: {training_seconds:.2f}")
print(f"total_seconds: {time.time() - T0:.2f}")
print(f"device: {device}")
