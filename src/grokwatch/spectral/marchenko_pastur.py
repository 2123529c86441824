"""Marchenko-Pastur law for the eigenvalues of W^T W rescaled to mean 1.

W is N x M with N >= M and i.i.d. elements of variance s^2. The eigenvalues of
W^T W have mean N s^2, so after dividing by their mean they follow the
Marchenko-Pastur law with sigma^2 = 1 and ratio y = M/N = 1/Q, Q = N/M >= 1:

    lambda_-+ = (1 -+ 1/sqrt(Q))^2
    rho(x)    = Q / (2 pi x) * sqrt((lambda_+ - x)(x - lambda_-)),  lambda_- <= x <= lambda_+

(no atom at 0 because Q >= 1; at Q = 1 the density has an integrable 1/sqrt(x)
singularity at 0). The CDF is closed form (see `cdf`). `tw_threshold` is
WeightWatcher's spike cut: lambda_+ plus a Tracy-Widom-like margin
sqrt((1/sqrt(Q)) lambda_+^(2/3) M^(-2/3)); it is about M^(-1/3), several times
the true Tracy-Widom fluctuation of the largest eigenvalue (~M^(-2/3)), so
Gaussian layers almost never cross it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "cdf",
    "density",
    "density_curve",
    "edges",
    "ks_distance",
    "lambda_plus",
    "tw_margin",
    "tw_threshold",
]


def _check_q(Q: float) -> float:
    Q = float(Q)
    if not np.isfinite(Q) or Q < 1.0:
        raise ValueError(f"Q = N/M must be >= 1, got {Q}")
    return Q


def edges(Q: float) -> tuple[float, float]:
    """(lambda_-, lambda_+) = ((1 - 1/sqrt(Q))^2, (1 + 1/sqrt(Q))^2) for sigma^2 = 1."""
    r = 1.0 / np.sqrt(_check_q(Q))
    return (1.0 - r) ** 2, (1.0 + r) ** 2


def lambda_plus(Q: float) -> float:
    return edges(Q)[1]


def tw_margin(Q: float, M: int) -> float:
    """WeightWatcher's margin above the edge: sqrt((1/sqrt(Q)) * lambda_+^(2/3) * M^(-2/3))."""
    lp = lambda_plus(Q)
    return float(np.sqrt((1.0 / np.sqrt(Q)) * lp ** (2.0 / 3.0) * float(M) ** (-2.0 / 3.0)))


def tw_threshold(Q: float, M: int) -> float:
    """Trap threshold: lambda_+ + tw_margin(Q, M) (WeightWatcher 0.7.7 `mp_fit`, with sigma = 1)."""
    return lambda_plus(Q) + tw_margin(Q, M)


def density(x: np.ndarray | float, Q: float) -> np.ndarray:
    """MP density at x (0 outside [lambda_-, lambda_+]; +inf at x = 0 when Q = 1)."""
    Q = _check_q(Q)
    lm, lp = edges(Q)
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    inside = (x > lm) & (x < lp)
    xi = x[inside]
    out[inside] = Q / (2.0 * np.pi * xi) * np.sqrt((lp - xi) * (xi - lm))
    if Q == 1.0:
        out[x == 0.0] = np.inf
    return out


def cdf(x: np.ndarray | float, Q: float) -> np.ndarray:
    """Closed-form MP CDF.

    With c = 1 + y, h = 2 sqrt(y) (y = 1/Q) and x = c + h cos(theta), theta in [0, pi],
        F(x) = 1 - (2/pi) G(theta),
        G(theta) = theta c / h^2 - sin(theta) / h - (1 - y)/(2y) * arctan(k tan(theta/2)),
        k = (1 - sqrt(y)) / (1 + sqrt(y)),
    which is exact for every Q >= 1 (at Q = 1: F = 1 - (theta - sin theta)/pi).
    """
    Q = _check_q(Q)
    y = 1.0 / Q
    c, h = 1.0 + y, 2.0 * np.sqrt(y)
    k = (1.0 - np.sqrt(y)) / (1.0 + np.sqrt(y))
    x = np.asarray(x, dtype=np.float64)
    theta = np.arccos(np.clip((x - c) / h, -1.0, 1.0))
    half = theta / 2.0
    G = (
        theta * c / h**2
        - np.sin(theta) / h
        - (1.0 - y) / (2.0 * y) * np.arctan2(k * np.sin(half), np.cos(half))
    )
    F = np.clip(1.0 - (2.0 / np.pi) * G, 0.0, 1.0)
    lm, lp = edges(Q)
    return np.where(x <= lm, 0.0, np.where(x >= lp, 1.0, F))


def ks_distance(sample: np.ndarray, Q: float) -> float:
    """Kolmogorov-Smirnov distance sup |F_n - F_MP| of a sample (already rescaled to mean 1)."""
    x = np.sort(np.asarray(sample, dtype=np.float64).ravel())
    n = len(x)
    if n == 0:
        return float("nan")
    F = cdf(x, Q)
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(max(np.max(i / n - F), np.max(F - (i - 1) / n)))


def density_curve(Q: float, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(x, rho) on a grid dense near both edges (cosine spacing), for plots."""
    lm, lp = edges(Q)
    t = np.linspace(0.0, np.pi, points)
    x = lm + (lp - lm) * (1.0 - np.cos(t)) / 2.0
    if Q == 1.0:
        x = x[1:]  # the density is infinite at 0
    return x, density(x, Q)
