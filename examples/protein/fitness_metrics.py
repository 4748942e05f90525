"""
ProteinGym's scores for a fitness predictor, shared by train.py (validation) and final_eval.py
(held-out fold). Not editable by agents: a change to train.py cannot change how it is scored.

    spearman(pred, y)        rank correlation: ProteinGym's headline metric
    ndcg(pred, y, 0.1)       NDCG over the top 10% of variants by prediction; the gain of a variant
                             is its measured fitness min-max scaled to [0, 1] (ProteinGym's NDCG)
    top_recall(pred, y, 0.1) share of the truly best 10% that are also in the predicted best 10%

All three return NaN when a prediction is not finite (a diverged model ranks nothing).
"""

import math

import numpy as np


def _ranks(a):
    r = np.empty(len(a))
    r[np.argsort(a, kind="stable")] = np.arange(len(a))
    return r


def spearman(pred, y):
    """Spearman rank correlation (Pearson correlation of the ranks; ties broken by order)."""
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not np.isfinite(pred).all() or pred.std() == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(pred), _ranks(y))[0, 1])


def ndcg(pred, y, top=0.1):
    """Normalized discounted cumulative gain of the top `top` fraction ranked by `pred`."""
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not np.isfinite(pred).all():
        return float("nan")
    k = max(1, math.ceil(top * len(y)))
    gain = (y - y.min()) / (y.max() - y.min() or 1.0)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (gain[np.argsort(-pred, kind="stable")[:k]] * discount).sum()
    ideal = (np.sort(gain)[::-1][:k] * discount).sum()
    return float(dcg / ideal) if ideal > 0 else float("nan")


def top_recall(pred, y, top=0.1):
    """Fraction of the `top` best variants by measurement found in the `top` best by prediction."""
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not np.isfinite(pred).all():
        return float("nan")
    k = max(1, math.ceil(top * len(y)))
    best_true = set(np.argsort(-y, kind="stable")[:k].tolist())
    best_pred = np.argsort(-pred, kind="stable")[:k]
    return float(np.mean([i in best_true for i in best_pred.tolist()]))


def scores(pred, y, prefix):
    """The three metrics as `{prefix}_spearman`, `{prefix}_ndcg10`, `{prefix}_recall10`."""
    return {f"{prefix}_spearman": spearman(pred, y), f"{prefix}_ndcg10": ndcg(pred, y), f"{prefix}_recall10": top_recall(pred, y)}
