"""Small statistics the promotion rule needs, without SciPy: Student's t quantiles and an upper
confidence bound of σ."""

from __future__ import annotations

import math


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Lentz's method)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1.0 - x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, dof: int) -> float:
    """P(T > t) for Student's t with ``dof`` degrees of freedom."""
    x = dof / (dof + t * t)
    tail = 0.5 * _betainc(dof / 2.0, 0.5, x)
    return tail if t >= 0 else 1.0 - tail


def normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def t_critical(z: float, dof: int) -> float:
    """The t value with the same one-sided tail probability as ``z`` standard deviations of a
    normal: a "z-sigma" bar that accounts for σ being estimated from only ``dof`` degrees."""
    if dof <= 0:
        return math.inf
    p = normal_sf(z)
    lo, hi = z, z
    while t_sf(hi, dof) > p:
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    for _ in range(100):
        mid = (lo + hi) / 2
        if t_sf(mid, dof) > p:
            lo = mid
        else:
            hi = mid
    return hi


#: Exact 10% quantiles of chi-square for 1..10 degrees of freedom, where Wilson-Hilferty is poor.
_CHI2_10 = (0.01579, 0.2107, 0.5844, 1.0636, 1.6103, 2.2041, 2.8331, 3.4895, 4.1682, 4.8652)


def chi2_lower10(dof: int) -> float:
    """The 10% quantile of chi-square with ``dof`` degrees of freedom (exact table for few dof,
    Wilson-Hilferty beyond)."""
    if 1 <= dof <= len(_CHI2_10):
        return _CHI2_10[dof - 1]
    k = float(dof)
    return k * (1.0 - 2.0 / (9.0 * k) - 1.2816 * math.sqrt(2.0 / (9.0 * k))) ** 3


def sigma_upper(sigma: float, dof: int) -> float:
    """The 90% upper confidence bound of σ estimated as ``sigma`` from ``dof`` degrees of freedom:
    with a handful of repeats a point estimate is often far too small (the authors measured seed
    variance 4-6x above what they had assumed)."""
    if dof <= 0:
        return math.inf
    return sigma * math.sqrt(dof / max(chi2_lower10(dof), 1e-9))
